//! Counter keys as 128-bit xxh3 hashes under a per-process random seed:
//! 16 bytes instead of the key string, no allocation per key, and
//! collisions cannot be provoked from outside. The in-process store and the
//! deny cache key their maps by them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

/// A key's 128-bit hash as two words: 8-byte aligned, so a map bucket
/// (hash and pointer) takes 24 bytes rather than 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyHash(u64, u64);

impl KeyHash {
    /// A seed no one outside this process can know.
    pub fn random_seed() -> u64 {
        RandomState::new().hash_one(0u8)
    }

    pub fn of(key: &str, seed: u64) -> Self {
        let hash = xxhash_rust::xxh3::xxh3_128_with_seed(key.as_bytes(), seed);
        Self(hash as u64, (hash >> 64) as u64)
    }

    /// The low word: already uniform, so it can pick a stripe as it is.
    pub fn low(self) -> u64 {
        self.0
    }
}

impl Hash for KeyHash {
    /// Already uniform: the map takes its low word as is.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The map's keys are already uniform hashes: pass them through.
#[derive(Clone, Copy, Default)]
pub(crate) struct PrehashedKey;

impl BuildHasher for PrehashedKey {
    type Hasher = Prehashed;
    fn build_hasher(&self) -> Prehashed {
        Prehashed(0)
    }
}

pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `KeyHash` is hashed here, through `write_u64`; fold anything else.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }
}
