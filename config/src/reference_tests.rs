//! The README's configuration reference against what the parser accepts: every key the parser
//! takes is documented there, and every key documented there is one the parser takes. What the
//! parser takes is read from its own answer to an unknown key (`expected one of …`), so a field
//! added to or removed from the `raw` structs without the README following fails here.

use std::collections::BTreeSet;
use std::path::Path;

use super::parse;

/// Each table of the configuration, as a snippet that puts an unknown key `zzz` in it, and how
/// the README writes a key of that table (`{}` is the field).
const TABLES: &[(&str, &str)] = &[
    ("[server]\nzzz = 1\n", "server.{}"),
    ("[[server.tls]]\nzzz = 1\n", "[[server.tls]] {}"),
    ("[admin]\nzzz = 1\n", "admin.{}"),
    ("[logging]\nzzz = 1\n", "logging.{}"),
    (
        "[origins.o]\nurl = \"http://a\"\nzzz = 1\n",
        "origins.NAME.{}",
    ),
    (
        "[origins.o]\nurl = \"http://a\"\ns3 = { region = \"r\", zzz = 1 }\n",
        "origins.NAME.s3.{}",
    ),
    ("[origin_groups.g]\nzzz = 1\n", "origin_groups.NAME.{}"),
    ("[[behaviors]]\nzzz = 1\n", "[[behaviors]] {}"),
    ("[functions.f]\nzzz = 1\n", "functions.NAME.{}"),
    ("[kvs.k]\nzzz = 1\n", "kvs.NAME.{}"),
    (
        "[[custom_error_responses]]\nzzz = 1\n",
        "[[custom_error_responses]] {}",
    ),
];

/// The fields the parser names when it refuses `zzz` in `snippet`.
fn accepted_fields(snippet: &str) -> Vec<String> {
    let errors = match parse(snippet, Path::new("v.toml")) {
        Ok(_) => panic!("`zzz` was accepted in:\n{snippet}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    let refusal = errors
        .iter()
        .find(|e| e.contains("unknown field `zzz`"))
        .unwrap_or_else(|| panic!("no unknown-field error for:\n{snippet}\n{errors:?}"));
    let expected = &refusal[refusal.find("expected").expect("a list of fields")..];
    let fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!fields.is_empty(), "{refusal}");
    fields
}

/// The rows of the README's `## Configuration reference` table: the text of each row's first
/// cell.
fn reference_rows() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("the README beside the workspace");
    let section = text
        .split("## Configuration reference")
        .nth(1)
        .expect("a configuration reference section");
    let table = section
        .split("| key | default | reload | meaning |")
        .nth(1)
        .expect("the reference table");
    table
        .lines()
        .skip(2) // the rest of the header line and the alignment row
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap_or_default().trim().to_owned())
        .collect()
}

/// The keys a row documents, written as [`TABLES`] writes them: its first code span is a whole
/// key, the ones after it are more fields of the same table (`` `[[server.tls]] cert`, `key` ``).
/// The hook slot's table form (`` `[[behaviors]] HOOK = { function = …, include_body = … }` ``)
/// documents the two fields of that form, returned under `HOOK.`.
fn documented_keys(cell: &str) -> Vec<String> {
    let spans: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
    let Some(first) = spans.first() else {
        return Vec::new();
    };
    if let Some(form) = first.strip_prefix("[[behaviors]] HOOK = {") {
        return ["function", "include_body"]
            .iter()
            .filter(|f| form.contains(&format!("{f} =")))
            .map(|f| format!("HOOK.{f}"))
            .collect();
    }
    let split_at = match first.rfind("]] ") {
        Some(i) => i + 3,
        None => first.rfind('.').map_or(0, |i| i + 1),
    };
    let prefix = &first[..split_at];
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            if i == 0 {
                (*span).to_owned()
            } else {
                format!("{prefix}{span}")
            }
        })
        .collect()
}

#[test]
fn the_readme_documents_exactly_the_keys_the_parser_accepts() {
    let mut accepted = BTreeSet::new();
    for (snippet, form) in TABLES {
        for field in accepted_fields(snippet) {
            // TLS listeners are their own table (`[[server.tls]]`), listed above.
            if form == &"server.{}" && field == "tls" {
                continue;
            }
            accepted.insert(form.replace("{}", &field));
        }
    }
    // The hook slot's table form: `viewer_request = { function = "f", zzz = 1 }`.
    for field in accepted_fields(
        "[[behaviors]]\npath_pattern = \"*\"\norigin = \"o\"\n\
         viewer_request = { function = \"f\", zzz = 1 }\n",
    ) {
        accepted.insert(format!("HOOK.{field}"));
    }
    // Every table the top level takes is one of those above.
    for section in accepted_fields("zzz = 1\n") {
        assert!(
            TABLES
                .iter()
                .any(|(snippet, _)| snippet.starts_with(&format!("[{section}"))
                    || snippet.starts_with(&format!("[[{section}"))),
            "the top level takes `{section}`, which this test does not look into"
        );
    }
    let documented: BTreeSet<String> = reference_rows()
        .iter()
        .flat_map(|cell| documented_keys(cell))
        .collect();
    let undocumented: Vec<_> = accepted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "accepted but not in the README's configuration reference: {undocumented:?}\n\
         in the reference but not accepted: {unknown:?}"
    );
}

#[test]
fn a_row_with_several_fields_documents_each_under_the_first_ones_table() {
    assert_eq!(
        documented_keys("`[[server.tls]] cert`, `key`"),
        ["[[server.tls]] cert", "[[server.tls]] key"]
    );
    assert_eq!(
        documented_keys("`origin_groups.NAME.primary`, `secondary`"),
        ["origin_groups.NAME.primary", "origin_groups.NAME.secondary"]
    );
    assert_eq!(
        documented_keys("`[[behaviors]] HOOK = { function = \"NAME\", include_body = true }`"),
        ["HOOK.function", "HOOK.include_body"]
    );
    assert!(documented_keys("no code here").is_empty());
}
