//! `docker compose` cannot run here, so this checks what can be checked of
//! docker-compose.yml without it: every command it runs is a real `lab`
//! subcommand with real flags, the services the README promises are there,
//! ports are published on 127.0.0.1 only, every name a service is reached
//! by is one it answers to (`--allowed-host`), and the image builds `lab`.

use clap::Parser;
use idemlab::cli::{Cli, Command};
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("docker-compose.yml is not YAML: {e}"))
        .remove(0)
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .unwrap_or_else(|| panic!("expected a list, got {list:?}"))
        .iter()
        .map(|v| v.as_str().expect("strings only").to_string())
        .collect()
}

/// A service's key, also when it comes from a `<<: *anchor` merge (which
/// YAML 1.2 parsers leave to the reader, as Compose does).
fn field<'a>(service: &'a Yaml, key: &str) -> &'a Yaml {
    let own = &service[key];
    if own.is_badvalue() {
        &service["<<"][key]
    } else {
        own
    }
}

#[test]
fn every_lab_command_in_the_compose_file_parses() {
    let doc = compose();
    let services = doc["services"].as_hash().expect("services");
    let mut lab_services = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let built = !field(service, "build").is_badvalue();
        if !built {
            continue;
        }
        lab_services += 1;
        let command = strings(&service["command"]);
        let argv = std::iter::once("lab".to_string()).chain(command.iter().cloned());
        if let Err(err) = Cli::try_parse_from(argv) {
            panic!(
                "service {name}: `lab {}` does not parse:\n{err}",
                command.join(" ")
            );
        }
    }
    assert_eq!(lab_services, 4, "fakes, web and two workers");
}

#[test]
fn the_promised_services_are_there_on_the_promised_engines() {
    let doc = compose();
    let services = &doc["services"];
    assert_eq!(services["postgres"]["image"].as_str(), Some("postgres:15"));
    assert_eq!(services["redis"]["image"].as_str(), Some("redis:7"));
    for name in ["fakes", "web", "worker-1", "worker-2"] {
        assert!(!services[name].is_badvalue(), "no service {name}");
    }
    let workers: Vec<_> = ["worker-1", "worker-2"]
        .iter()
        .map(|w| strings(&services[*w]["command"]))
        .collect();
    assert!(workers.iter().all(|c| c[0] == "worker"));
    for service in services.as_hash().unwrap().values() {
        if let Some(ports) = service["ports"].as_vec() {
            for port in ports {
                let port = port.as_str().unwrap();
                assert!(
                    port.starts_with("127.0.0.1:"),
                    "{port} is published beyond this machine"
                );
            }
        }
    }
}

#[test]
fn the_image_builds_the_lab_binary() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin lab"));
    assert!(dockerfile.contains("ENTRYPOINT [\"lab\"]"));
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
}

/// The names a service's server answers to besides IP addresses and
/// localhost (`--allowed-host`), from its parsed command line.
fn allowed_hosts(service: &Yaml) -> Vec<String> {
    let argv = std::iter::once("lab".to_string()).chain(strings(&service["command"]));
    let hosts = match Cli::try_parse_from(argv).expect("parses").command {
        Command::Fakes(args) => args.hosts,
        Command::Web(args) => args.hosts,
        Command::Serve(args) => args.hosts,
        _ => return Vec::new(),
    };
    hosts.hosts().names().map(String::from).collect()
}

/// Every `http://NAME:…` in `text`: the names it reaches services by.
fn http_names(text: &str) -> Vec<String> {
    text.split("http://")
        .skip(1)
        .map(|rest| {
            rest.split([':', '/'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The servers refuse a `Host` that is not an IP address, localhost or an
/// `--allowed-host` name (DNS rebinding), so each service that another one
/// calls by its compose name must be started with that name.
#[test]
fn every_service_answers_to_the_name_it_is_called_by() {
    let doc = compose();
    let services = doc["services"].as_hash().expect("services");
    let mut texts = Vec::new();
    for service in services.values() {
        if let Some(command) = service["command"].as_vec() {
            texts.extend(command.iter().filter_map(|v| v.as_str().map(String::from)));
        }
        if let Some(env) = field(service, "environment").as_hash() {
            texts.extend(env.values().filter_map(|v| v.as_str().map(String::from)));
        }
    }
    let mut checked = 0;
    for name in texts.iter().flat_map(|text| http_names(text)) {
        let Some(service) = services.get(&Yaml::String(name.clone())) else {
            continue;
        };
        let allowed = allowed_hosts(service);
        assert!(
            allowed.contains(&name),
            "service {name} is called as http://{name}:… but answers only to {allowed:?}: \
             add `--allowed-host {name}` to its command"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the web lab and the workers call the fakes by name"
    );
}
