//! `ratelimitd config validate [FILE] [--envoy DIR [--merge-domain-configs]]`, the counterpart of
//! the reference service's `ratelimit_config_check`: every error, exit 1.

use ratelimitd_server::config::Sources;
use std::path::PathBuf;
use std::process::ExitCode;

/// `config validate [FILE] [--envoy DIR]`, the counterpart of the
/// reference service's `ratelimit_config_check`.
pub fn validate(file: Option<PathBuf>, envoy: Option<PathBuf>, merge_domains: bool) -> ExitCode {
    if file.is_none() && envoy.is_none() {
        eprintln!("ratelimitd: give a policy file, --envoy DIR, or both");
        return ExitCode::from(2);
    }
    let sources = Sources {
        policy_file: file.clone(),
        envoy_dir_flag: envoy.clone(),
        merge_envoy_domains: merge_domains,
        ..Sources::default()
    };
    let named = file
        .iter()
        .chain(&envoy)
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    match sources.load() {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let mut parts = Vec::new();
            if file.is_some() {
                parts.push(format!(
                    "{} rules, {} limits",
                    loaded.policy.policy.rules().len(),
                    loaded.policy.policy.limits().len()
                ));
            }
            if let Some(envoy) = &loaded.envoy {
                parts.push(format!(
                    "{} envoy domains, {} envoy limits",
                    envoy.config.domain_count(),
                    envoy.config.limits().len()
                ));
            }
            outln!("{named}: OK ({})", parts.join("; "));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{named}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}
