use std::path::Path;
use std::time::Duration;

use super::*;

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("v.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[origins.app]
url = "http://127.0.0.1:3000"

[[behaviors]]
path_pattern = "*"
origin = "app"
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL, Path::new("v.toml")).unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(c.admin.listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(c.server.max_url_bytes, 8192);
    assert_eq!(c.server.max_header_bytes, 20480);
    let o = &c.origins["app"];
    assert_eq!(o.connect_timeout, Duration::from_secs(10));
    assert_eq!(o.read_timeout, Duration::from_secs(30));
    assert_eq!(o.write_timeout, Duration::from_secs(30));
    assert_eq!(o.idle_timeout, Duration::from_secs(5));
    assert!(o.verify_tls);
    assert_eq!(
        (o.host.as_str(), o.port, o.path.as_str()),
        ("127.0.0.1", 3000, "")
    );
    assert!(c.behaviors[0].path_pattern.is_default());
    assert_eq!(c.server.max_stuck_workers, 8);
    assert!(c.server.batch_scheduling);
    let off = parse(
        &format!("[server]\nbatch_scheduling = false\n{MINIMAL}"),
        Path::new("v.toml"),
    );
    assert!(!off.unwrap().server.batch_scheduling);
    assert!(!c.server.preserve_header_case);
    let kept = parse(
        &format!("[server]\npreserve_header_case = true\n{MINIMAL}"),
        Path::new("v.toml"),
    );
    assert!(kept.unwrap().server.preserve_header_case);
    let e = errors(&format!("[server]\nbatch_scheduling = \"no\"\n{MINIMAL}"));
    assert!(
        e[0].starts_with("v.toml:2:20: server.batch_scheduling: "),
        "{e:?}"
    );
    let e = errors(&format!("[server]\nmax_stuck_workers = 0\n{MINIMAL}"));
    assert!(
        e[0].contains("server.max_stuck_workers: must be between 1 and 1024"),
        "{e:?}"
    );
}

#[test]
fn full_config_resolves_groups_and_origin_paths() {
    let text = r#"
[origins.a]
url = "https://example.com/base/"
connect_timeout = "250ms"
[origins.b]
url = "http://[::1]:81"
[origin_groups.ha]
primary = "a"
secondary = "b"
failover_status = [503]
[[behaviors]]
path_pattern = "/api/*"
origin = "ha"
[[behaviors]]
path_pattern = "*"
origin = "b"
"#;
    let c = parse(text, Path::new("v.toml")).unwrap();
    let a = &c.origins["a"];
    assert_eq!(
        (a.scheme, a.port, a.path.as_str()),
        (Scheme::Https, 443, "/base")
    );
    assert_eq!(a.connect_timeout, Duration::from_millis(250));
    assert_eq!(a.authority(), "example.com");
    assert_eq!(c.origins["b"].authority(), "[::1]:81");
    match &c.behaviors[0].target {
        Target::Group(g) => {
            assert_eq!(g.primary.name, "a");
            assert_eq!(g.failover_status, vec![503]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_key_names_line_col_and_path() {
    let e = errors(
        r#"
[origins.app]
url = "http://127.0.0.1:3000"
conect_timeout = "2s"
"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("v.toml:4:1: origins.app.conect_timeout: unknown field `conect_timeout`"),
        "{e:?}"
    );
}

#[test]
fn wrong_type_names_line_col_and_path() {
    let e = errors("[server]\nthreads = \"two\"\n");
    assert!(e[0].starts_with("v.toml:2:11: server.threads: "), "{e:?}");
}

#[test]
fn bad_duration_points_at_the_value() {
    let e = errors(&MINIMAL.replace(
        "url = \"http://127.0.0.1:3000\"",
        "url = \"http://127.0.0.1:3000\"\nread_timeout = \"30 seconds\"",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("v.toml:4:16: origins.app.read_timeout: unknown unit"),
        "{e:?}"
    );
}

#[test]
fn unknown_origin_in_behavior_is_reported_at_the_name() {
    let e = errors(&MINIMAL.replace("origin = \"app\"", "origin = \"nope\""));
    assert_eq!(
        e,
        vec!["v.toml:7:10: behaviors[0].origin: no origin or origin group is named `nope`"]
    );
}

#[test]
fn a_name_shared_by_an_origin_and_a_group_is_refused() {
    let e = errors(&format!(
        "{MINIMAL}\n[origin_groups.app]\nprimary = \"app\"\nsecondary = \"app\"\n"
    ));
    assert!(
        e[0].contains("origin_groups.app: `app` names both"),
        "{e:?}"
    );
}

#[test]
fn unreadable_function_file_is_a_config_error() {
    let text = format!(
        "{}\nviewer_request = \"f\"\n[functions.f]\ncode = \"missing.js\"\n",
        MINIMAL.trim_end()
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("v.toml:10:8: functions.f.code: cannot read "),
        "{e:?}"
    );
}

#[test]
fn cloudfront_functions_are_refused_at_origin_hooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.js"),
        "function handler(e){return e.request}",
    )
    .unwrap();
    let text = format!(
        "{}\norigin_request = \"f\"\n[functions.f]\ncode = \"f.js\"\n",
        MINIMAL.trim_end()
    );
    let e = parse(&text, &dir.path().join("v.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("behaviors[0].origin_request: `f` is a cloudfront-js-2.0 function"),
        "{e}"
    );
}

#[test]
fn edge_settings_have_lambda_edge_defaults_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.js"), "exports.handler = async (e) => e;").unwrap();
    let config = |settings: &str| {
        format!(
            "{}
origin_request = \"f\"\n[functions.f]\nruntime = \"lambda-edge\"\ncode = \"f.js\"\n{settings}\n",
            MINIMAL.trim_end()
        )
    };
    let c = parse(&config(""), &dir.path().join("v.toml")).unwrap();
    let f = c.behaviors[0].function(Hook::OriginRequest).unwrap();
    assert_eq!(f.instances, 4);
    assert_eq!(f.memory_mb, 128);
    assert_eq!(f.timeout_at(Hook::ViewerRequest), Duration::from_secs(5));
    assert_eq!(f.timeout_at(Hook::OriginRequest), Duration::from_secs(30));
    let c = parse(
        &config("timeout = \"2s\"\ninstances = 16\nmemory_mb = 1024"),
        &dir.path().join("v.toml"),
    )
    .unwrap();
    let f = c.behaviors[0].function(Hook::OriginRequest).unwrap();
    assert_eq!(
        (f.instances, f.timeout_at(Hook::ViewerRequest), f.memory_mb),
        (16, Duration::from_secs(2), 1024)
    );
    for (settings, expected) in [
        (
            "timeout = \"31s\"",
            "functions.f.timeout: may be at most 30s",
        ),
        (
            "instances = 0",
            "functions.f.instances: must be between 1 and 1024",
        ),
        (
            "memory_mb = 64",
            "functions.f.memory_mb: must be between 128 and 10240",
        ),
        (
            "memory_mb = 10241",
            "functions.f.memory_mb: must be between 128 and 10240",
        ),
        (
            "budget = \"500us\"",
            "functions.f.budget: lambda-edge functions have a wall-clock",
        ),
    ] {
        let e = parse(&config(settings), &dir.path().join("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{settings}: {e}");
    }
    // Edge settings on a CloudFront Function are mistakes, reported.
    let text = format!(
        "{}\nviewer_request = \"g\"\n[functions.g]\ncode = \"f.js\"\ntimeout = \"1s\"\ninstances = 2\nmemory_mb = 256\n",
        MINIMAL.trim_end()
    );
    let e = parse(&text, &dir.path().join("v.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("functions.g.timeout: applies only to runtime lambda-edge"),
        "{e}"
    );
    assert!(
        e.contains("functions.g.instances: applies only to runtime lambda-edge"),
        "{e}"
    );
    assert!(
        e.contains("functions.g.memory_mb: applies only to runtime lambda-edge"),
        "{e}"
    );
}

#[test]
fn include_body_is_set_per_request_hook_for_lambda_edge_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.js"), "exports.handler = async (e) => e;").unwrap();
    std::fs::write(
        dir.path().join("c.js"),
        "function handler(e){return e.request}",
    )
    .unwrap();
    let config = |hooks: &str| {
        format!(
            "{}\n{hooks}\n[functions.e]\nruntime = \"lambda-edge\"\ncode = \"e.js\"\n\
             [functions.c]\ncode = \"c.js\"\n",
            MINIMAL.trim_end()
        )
    };
    let c = parse(
        &config(
            "viewer_request = { function = \"e\", include_body = true }\n\
             origin_request = { function = \"e\" }\norigin_response = \"e\"",
        ),
        &dir.path().join("v.toml"),
    )
    .unwrap();
    let b = &c.behaviors[0];
    assert!(b.includes_body(Hook::ViewerRequest));
    assert!(!b.includes_body(Hook::OriginRequest));
    assert!(b.function(Hook::OriginRequest).is_some());
    assert!(b.function(Hook::OriginResponse).is_some());
    for (hooks, expected) in [
        (
            "origin_response = { function = \"e\", include_body = true }",
            "v.toml:8:19: behaviors[0].origin_response.include_body: include_body applies to viewer_request and origin_request only",
        ),
        (
            "viewer_request = { function = \"c\", include_body = true }",
            "behaviors[0].viewer_request.include_body: `c` is a CloudFront Function, which cannot read the request body",
        ),
        (
            "origin_request = { function = \"e\", include_bodies = true }",
            "unknown field `include_bodies`",
        ),
        (
            "origin_request = { function = \"nope\" }",
            "behaviors[0].origin_request: no function is named `nope`",
        ),
    ] {
        let e = parse(&config(hooks), &dir.path().join("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{hooks}: {e}");
    }
}

#[test]
fn fetch_lists_origins_by_name_with_bounded_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.js"), "exports.handler = async (e) => e;").unwrap();
    let config = |runtime: &str, settings: &str| {
        format!(
            "{}\norigin_response = \"f\"\n[functions.f]\nruntime = \"{runtime}\"\ncode = \"f.js\"\n{settings}\n",
            MINIMAL.trim_end()
        )
    };
    let c = parse(&config("lambda-edge", ""), &dir.path().join("v.toml")).unwrap();
    let fetch = &c.functions["f"].fetch;
    assert!(fetch.origins.is_empty());
    assert_eq!(
        (fetch.timeout, fetch.max_calls, fetch.max_bytes),
        (Duration::from_secs(5), 10, 1024 * 1024)
    );
    let c = parse(
        &config(
            "lambda-edge",
            "fetch = [\"app\"]\nfetch_timeout = \"2s\"\nfetch_max_calls = 3\nfetch_max_bytes = 100",
        ),
        &dir.path().join("v.toml"),
    )
    .unwrap();
    let fetch = &c.functions["f"].fetch;
    assert_eq!(fetch.origins[0].name, "app");
    assert_eq!(
        (fetch.timeout, fetch.max_calls, fetch.max_bytes),
        (Duration::from_secs(2), 3, 100)
    );
    for (runtime, settings, expected) in [
        (
            "lambda-edge",
            "fetch = [\"nope\"]",
            "functions.f.fetch: no origin is named `nope`",
        ),
        (
            "lambda-edge",
            "fetch_timeout = \"31s\"",
            "functions.f.fetch_timeout: must be more than 0",
        ),
        (
            "lambda-edge",
            "fetch_max_calls = 0",
            "functions.f.fetch_max_calls: must be between 1 and 1000",
        ),
        (
            "lambda-edge",
            "fetch_max_bytes = 0",
            "functions.f.fetch_max_bytes: must be between 1",
        ),
        (
            "cloudfront-js-2.0",
            "fetch = [\"app\"]",
            "functions.f.fetch: applies only to runtime lambda-edge",
        ),
    ] {
        let e = parse(&config(runtime, settings), &dir.path().join("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{settings}: {e}");
    }
}

#[test]
fn functions_load_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fns")).unwrap();
    std::fs::write(
        dir.path().join("fns/f.js"),
        "function handler(e){return e.request}",
    )
    .unwrap();
    let text = format!(
        "{}\nviewer_request = \"f\"\n[functions.f]\ncode = \"fns/f.js\"\n",
        MINIMAL.trim_end()
    );
    let c = parse(&text, &dir.path().join("v.toml")).unwrap();
    let f = c.behaviors[0].function(Hook::ViewerRequest).unwrap();
    assert_eq!(f.runtime, Runtime::CloudfrontJs2);
    assert!(f.code.contains("handler"));
    assert!(c.watched_files().contains(&dir.path().join("fns/f.js")));
}

#[test]
fn every_file_a_configuration_names_is_watched_and_named_even_when_it_is_not_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.toml");
    std::fs::write(dir.path().join("ca.pem"), "any bytes").unwrap();
    std::fs::write(
        dir.path().join("f.js"),
        "function handler(e){return e.request}",
    )
    .unwrap();
    let text = "[origins.app]\nurl = \"https://127.0.0.1:3000\"\nca_file = \"ca.pem\"\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n\
         [functions.f]\ncode = \"f.js\"\n";
    std::fs::write(&file, text).unwrap();
    let all = [
        dir.path().join("ca.pem"),
        dir.path().join("f.js"),
        file.clone(),
    ];
    // A CA file is read at load, so a change to it is a change to the configuration.
    assert_eq!(load(&file).unwrap().watched_files(), all);
    assert_eq!(files_named(&file), all);
    // Not valid (a function file not written yet): still named, so it can be watched.
    std::fs::remove_file(dir.path().join("f.js")).unwrap();
    assert!(load(&file).is_err());
    assert_eq!(files_named(&file), all);
    // Text that does not parse names only itself; a missing file too.
    std::fs::write(&file, "[origins.app\n").unwrap();
    assert_eq!(files_named(&file), std::slice::from_ref(&file));
    assert_eq!(
        files_named(&dir.path().join("gone.toml")),
        [dir.path().join("gone.toml")]
    );
}

#[test]
fn the_last_behavior_must_be_the_default() {
    let e = errors(&MINIMAL.replace("path_pattern = \"*\"", "path_pattern = \"/api/*\""));
    assert!(
        e[0].contains("behaviors[0].path_pattern: the last behavior is the default"),
        "{e:?}"
    );
    let e = errors("[origins.app]\nurl = \"http://127.0.0.1:1\"\n");
    assert!(e[0].contains("behaviors: at least one behavior"), "{e:?}");
}

#[test]
fn several_errors_are_all_reported_in_source_order() {
    let e = errors(
        r#"
[origins.app]
url = "ftp://x"
[origins.b]
url = "http://127.0.0.1:1"
idle_timeout = "0s"
[[behaviors]]
path_pattern = "*"
origin = "b"
viewer_request = "ghost"
"#,
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("v.toml:3:7: origins.app.url: the scheme must be http or https"));
    assert!(e[1].starts_with("v.toml:6:16: origins.b.idle_timeout: must be greater than zero"));
    assert!(e[2].starts_with("v.toml:10:18: behaviors[0].viewer_request: no function is named"));
}

#[test]
fn toml_syntax_errors_have_positions() {
    let e = errors("[server\nlisten = 1\n");
    assert!(e[0].starts_with("v.toml:1:"), "{e:?}");
}

#[test]
fn restart_only_changes_are_listed_and_reloadable_ones_are_not() {
    let a = parse(MINIMAL, Path::new("v.toml")).unwrap();
    let b = parse(
        &format!("[server]\nlisten = [\"127.0.0.1:9000\"]\nthreads = 3\n{MINIMAL}"),
        Path::new("v.toml"),
    )
    .unwrap();
    let mut changed = a.restart_only_changes(&b);
    changed.sort();
    assert!(changed.contains(&"server.listen".to_owned()), "{changed:?}");
    let c = parse(
        &MINIMAL.replace("127.0.0.1:3000", "127.0.0.1:4000"),
        Path::new("v.toml"),
    )
    .unwrap();
    assert!(a.restart_only_changes(&c).is_empty());
}

#[test]
fn an_s3_origin_names_its_region_and_a_lower_case_domain() {
    let text = "[origins.assets]\nurl = \"https://b.s3.eu-west-1.amazonaws.com/img\"\n\
                s3 = { region = \"eu-west-1\" }\n\
                [[behaviors]]\npath_pattern = \"*\"\norigin = \"assets\"\n";
    let c = parse(text, Path::new("v.toml")).unwrap();
    let o = &c.origins["assets"];
    let s3 = o.s3.as_ref().unwrap();
    assert_eq!(
        (s3.region.as_str(), s3.credentials.is_none()),
        ("eu-west-1", true)
    );
    assert_eq!(
        (o.host.as_str(), o.port, o.path.as_str()),
        ("b.s3.eu-west-1.amazonaws.com", 443, "/img")
    );
    assert_eq!(
        parse(MINIMAL, Path::new("v.toml")).unwrap().origins["app"].s3,
        None
    );

    let with = |url: &str, s3: &str| {
        errors(&format!(
            "[origins.assets]\nurl = \"{url}\"\ns3 = {s3}\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"assets\"\n"
        ))
    };
    let e = with("https://B.s3.amazonaws.com", "{ region = \"us-east-1\" }");
    assert!(
        e[0].starts_with("v.toml:2:7: origins.assets.url: an S3 origin's domain `B.s3")
            && e[0].contains("must be lower case and at most 128 characters"),
        "{e:?}"
    );
    let long = format!("https://{}.s3.amazonaws.com", "b".repeat(112));
    let e = with(&long, "{ region = \"us-east-1\" }");
    assert!(e[0].contains("at most 128 characters"), "{e:?}");
    let e = with("https://b.s3.amazonaws.com", "{ region = \"EU West\" }");
    assert!(
        e[0].starts_with("v.toml:3:17: origins.assets.s3.region: `EU West` is not a region name"),
        "{e:?}"
    );
    let e = with("https://b.s3.amazonaws.com", "{ region = \"\" }");
    assert!(
        e[0].contains("origins.assets.s3.region: `` is not a region name"),
        "{e:?}"
    );
    let e = with(
        "https://b.s3.amazonaws.com",
        "{ region = \"us-east-1\", oai = \"x\" }",
    );
    assert!(e[0].contains("unknown field `oai`"), "{e:?}");
    let e = with("https://b.s3.amazonaws.com", "{ }");
    assert!(e[0].contains("missing field `region`"), "{e:?}");
    let e = errors(
        "[origins.assets]\nurl = \"https://b.s3.amazonaws.com\"\npreserve_host = true\n\
         s3 = { region = \"us-east-1\" }\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"assets\"\n",
    );
    assert!(
        e[0].starts_with(
            "v.toml:4:6: origins.assets.preserve_host: an S3 origin gets its own host"
        ),
        "{e:?}"
    );
}

#[test]
fn a_signing_s3_origin_reads_its_profile_from_the_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws"),
        "[default]\naws_access_key_id = AKIDD\naws_secret_access_key = sd\n\
         [cdn]\naws_access_key_id = AKIDC\naws_secret_access_key = sc\naws_session_token = t\n",
    )
    .unwrap();
    let file = dir.path().join("v.toml");
    let with = |s3: &str| {
        format!(
            "[origins.b]\nurl = \"https://b.s3.amazonaws.com\"\ns3 = {s3}\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"b\"\n"
        )
    };
    let c = parse(
        &with("{ region = \"us-east-1\", credentials_file = \"aws\" }"),
        &file,
    )
    .unwrap();
    let creds = c.origins["b"].s3.as_ref().unwrap().credentials.clone();
    assert_eq!(creds.unwrap().access_key_id, "AKIDD");
    let c = parse(
        &with("{ region = \"us-east-1\", credentials_file = \"aws\", profile = \"cdn\" }"),
        &file,
    )
    .unwrap();
    let creds = c.origins["b"]
        .s3
        .as_ref()
        .unwrap()
        .credentials
        .clone()
        .unwrap();
    assert_eq!(
        (creds.access_key_id.as_str(), creds.session_token.as_deref()),
        ("AKIDC", Some("t"))
    );
    // The credentials file is one the configuration names: editing it reloads.
    std::fs::write(
        &file,
        with("{ region = \"us-east-1\", credentials_file = \"aws\" }"),
    )
    .unwrap();
    let named = crate::files_named(&file);
    assert!(named.contains(&dir.path().join("aws")), "{named:?}");

    let e = parse(
        &with("{ region = \"us-east-1\", credentials_file = \"aws\", profile = \"x\" }"),
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("v.toml:3:49: origins.b.s3.credentials_file: no profile `[x]`"),
        "{e}"
    );
    let e = parse(
        &with(
            "{ region = \"us-east-1\", credentials_file = \"aws\", credentials_from_env = true }",
        ),
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "origins.b.s3.credentials_from_env: credentials come from credentials_file or the \
             environment, not both"
        ),
        "{e}"
    );
    let e = parse(
        &with("{ region = \"us-east-1\", credentials_file = \"none\" }"),
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("origins.b.s3.credentials_file: cannot read"),
        "{e}"
    );
    let e = parse(
        &with("{ region = \"us-east-1\", profile = \"cdn\" }"),
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("origins.b.s3.profile: a profile names a section of credentials_file"),
        "{e}"
    );
}

#[test]
fn signing_says_which_requests_the_credentials_sign() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws"),
        "[default]\naws_access_key_id = AKIDD\naws_secret_access_key = sd\n",
    )
    .unwrap();
    let file = dir.path().join("v.toml");
    let bucket = |signing: &str| {
        let text = format!(
            "[origins.b]\nurl = \"https://b.s3.amazonaws.com\"\n\
             s3 = {{ region = \"us-east-1\", credentials_file = \"aws\"{signing} }}\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"b\"\n"
        );
        parse(&text, &file).map(|c| c.origins["b"].s3.clone().unwrap())
    };
    // (the setting, signed without a viewer's authorization, signed with one)
    for (setting, without, with) in [
        ("", true, true),
        (", signing = \"always\"", true, true),
        (", signing = \"no-override\"", true, false),
        (", signing = \"never\"", false, false),
    ] {
        let b = bucket(setting).unwrap();
        assert_eq!(b.signer(false).is_some(), without, "{setting}");
        assert_eq!(b.signer(true).is_some(), with, "{setting}");
    }
    let e = bucket(", signing = \"sometimes\"").unwrap_err().to_string();
    assert!(
        e.contains("origins.b.s3.signing: `sometimes` is not always, no-override or never"),
        "{e}"
    );
    let e = parse(
        "[origins.b]\nurl = \"https://b.s3.amazonaws.com\"\n\
         s3 = { region = \"us-east-1\", signing = \"always\" }\n\
         [[behaviors]]\npath_pattern = \"*\"\norigin = \"b\"\n",
        &file,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("origins.b.s3.signing: signing needs credentials: credentials_file or"),
        "{e}"
    );
}

#[test]
fn a_behavior_names_the_cloudfront_headers_verge_adds() {
    let with = |list: &str| {
        format!(
            "[origins.app]\nurl = \"http://127.0.0.1:3000\"\n\
             [[behaviors]]\npath_pattern = \"*\"\norigin = \"app\"\ncloudfront_headers = {list}\n"
        )
    };
    let c = parse(
        &with("[\"cloudfront-viewer-address\", \"CloudFront-Forwarded-Proto\", \"CloudFront-Viewer-Address\"]"),
        Path::new("v.toml"),
    )
    .unwrap();
    assert_eq!(
        c.behaviors[0].cloudfront_headers,
        vec![
            CloudFrontHeader::ViewerAddress,
            CloudFrontHeader::ForwardedProto
        ]
    );
    assert!(
        parse(MINIMAL, Path::new("v.toml")).unwrap().behaviors[0]
            .cloudfront_headers
            .is_empty()
    );
    let e = errors(&with("[\"CloudFront-Viewer-Country\"]"));
    assert!(
        e[0].starts_with(
            "v.toml:6:23: behaviors[0].cloudfront_headers: `CloudFront-Viewer-Country` is one \
             verge cannot add"
        ) && e[0].contains("verge adds CloudFront-Forwarded-Proto, CloudFront-Viewer-Address"),
        "{e:?}"
    );
    let e = errors(&with("[\"X-Forwarded-Proto\"]"));
    assert!(
        e[0].contains("`X-Forwarded-Proto` is not a CloudFront header"),
        "{e:?}"
    );
}

#[test]
fn a_cloudfront_headers_wire_name_is_its_name_in_lower_case() {
    for h in CloudFrontHeader::ALL {
        assert_eq!(h.lower_name(), h.name().to_ascii_lowercase());
    }
}

#[test]
fn custom_error_responses_name_cloudfronts_codes_and_a_page_path() {
    let text = format!(
        "{MINIMAL}[[custom_error_responses]]\nerror_code = 404\n\
         response_page_path = \"/index.html\"\nresponse_code = 200\n\
         [[custom_error_responses]]\nerror_code = 503\n\
         response_page_path = \"/errors/busy.html\"\nresponse_code = 503\n"
    );
    let c = parse(&text, Path::new("v.toml")).unwrap();
    assert_eq!(
        c.custom_error_response(404).map(|c| &**c),
        Some(&CustomErrorResponse {
            error_code: 404,
            response_page_path: "/index.html".into(),
            response_code: 200,
        })
    );
    assert_eq!(c.custom_error_response(503).unwrap().response_code, 503);
    assert_eq!(c.custom_error_response(500), None);
    assert!(
        parse(MINIMAL, Path::new("v.toml"))
            .unwrap()
            .custom_error_responses
            .is_empty()
    );

    let entry = |code: &str, page: &str, response: &str| {
        errors(&format!(
            "{MINIMAL}[[custom_error_responses]]\nerror_code = {code}\n\
             response_page_path = \"{page}\"\nresponse_code = {response}\n"
        ))
    };
    let line = MINIMAL.lines().count() + 2;
    let e = entry("418", "/x", "200");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "v.toml:{line}:14: custom_error_responses[0].error_code: 418 is not a status \
             CloudFront customizes"
        )),
        "{e:?}"
    );
    let e = entry("404", "/x", "302");
    assert!(
        e[0].contains("custom_error_responses[0].response_code: 302 is not a status"),
        "{e:?}"
    );
    for (page, why) in [
        ("index.html", "must start with `/`"),
        ("/a?b=1", "no query"),
        ("/a b", "no query"),
    ] {
        let e = entry("404", page, "200");
        assert!(
            e[0].contains("custom_error_responses[0].response_page_path: ") && e[0].contains(why),
            "{page}: {e:?}"
        );
    }
    let e = entry("404", &format!("/{}", "a".repeat(4000)), "200");
    assert!(
        e[0].contains("4001 characters; CloudFront allows 4000"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{MINIMAL}[[custom_error_responses]]\nerror_code = 404\nresponse_page_path = \"/a\"\n\
         response_code = 200\n[[custom_error_responses]]\nerror_code = 404\n\
         response_page_path = \"/b\"\nresponse_code = 404\n"
    ));
    assert!(
        e[0].contains(
            "custom_error_responses[1].error_code: 404 already has a custom error response"
        ),
        "{e:?}"
    );
    // All three keys are required, and no other is known.
    let e = errors(&format!(
        "{MINIMAL}[[custom_error_responses]]\nerror_code = 404\nresponse_code = 200\n"
    ));
    assert!(e[0].contains("response_page_path"), "{e:?}");
    let e = errors(&format!(
        "{MINIMAL}[[custom_error_responses]]\nerror_code = 404\nresponse_page_path = \"/a\"\n\
         response_code = 200\nerror_caching_min_ttl = 10\n"
    ));
    assert!(
        e[0].contains("unknown field `error_caching_min_ttl`"),
        "{e:?}"
    );
}
