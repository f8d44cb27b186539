//! Giving a request or response the headers a function returned, touching only the names whose
//! values changed: a CloudFront Function's outcome already names only those
//! ([`HeaderEdits::Changes`], parsed and made here); a Lambda@Edge handler's is the whole list
//! ([`HeaderEdits::Whole`]), compared here with the headers the target has.
//!
//! A whole list names every header, changed or not. Removing all of them and appending the
//! list again cost ~2.5 µs per invocation on the proxy thread (`perf`, the rewrite row), most of
//! it re-inserting headers the function never touched. Here a name whose values are the same,
//! in the same order, is left as it is; a changed name is replaced; a name the list no longer
//! has is removed. What goes on the wire is the same set of headers as a full replacement,
//! except that untouched names are never re-inserted: they keep their bytes (and, where verge
//! keeps header case, their case), and move only when `http` fills a removed name's slot. The
//! edits are found first and then made in one go ([`apply`]): straight on the `http` map, or
//! through pingora where it keeps a case map to update as well ([`crate::header_case`]).

use http::{HeaderMap, HeaderName, HeaderValue};

use verge_functions::HeaderEdits;

use crate::header_case::Headers;

/// What a list changes: names to remove, and names whose values are replaced.
#[derive(Default)]
struct Edits {
    gone: Vec<HeaderName>,
    changed: Vec<(HeaderName, Vec<HeaderValue>)>,
}

/// Carry out `edits`: on the `http` map in one go when the header keeps no case map, else
/// through pingora, which keeps its case map in step.
fn apply<T: Headers>(target: &mut T, edits: Edits) -> Result<(), String> {
    if target.edits_directly() {
        return target.edit_map(|map| {
            for name in &edits.gone {
                map.remove(name);
            }
            for (name, values) in edits.changed {
                let too_many = |_| cannot_send(name.as_str(), &"too many headers");
                let mut values = values.into_iter();
                if let Some(first) = values.next() {
                    map.try_insert(name.clone(), first).map_err(too_many)?;
                }
                for value in values {
                    map.try_append(name.clone(), value).map_err(too_many)?;
                }
            }
            Ok(())
        });
    }
    for name in &edits.gone {
        target.remove_kept(name);
    }
    for (name, values) in edits.changed {
        // A new name needs no removal: pingora's hashes the name into both of its maps even
        // when it is absent.
        if target.header_map().contains_key(&name) {
            target.remove_kept(&name);
        }
        for value in values {
            target
                .append_kept(name.clone(), value)
                .map_err(|e| cannot_send(name.as_str(), &e))?;
        }
    }
    Ok(())
}

/// Lists and header maps up to this size are compared name by name in place
/// ([`edits_small`]); larger ones are grouped in a map first ([`edits_grouped`]).
const SMALL: usize = 32;

/// Make `target` carry exactly the headers of `list` (names in any case, the values of one name
/// in order). The whole list is checked first: an invalid name or value is an error naming the
/// header, and `target` is left untouched. Linear in the number of headers, however many a
/// viewer sent: only lists and maps of at most [`SMALL`] entries are compared pairwise.
pub fn replace<T: Headers>(target: &mut T, list: &[(String, Vec<u8>)]) -> Result<(), String> {
    let edits = if list.len() <= SMALL && target.header_map().keys_len() <= SMALL {
        edits_small(target.header_map(), list)?
    } else {
        edits_grouped(target.header_map(), list)?
    };
    apply(target, edits)
}

/// Carry out a function's header edits on `target`: a whole list as [`replace`] does; changes
/// name by name, every header they do not name left as it is. Checked first as [`replace`]
/// checks: an invalid name or value is an error naming the header, and `target` is left
/// untouched.
pub fn edit<T: Headers>(target: &mut T, edits: &HeaderEdits) -> Result<(), String> {
    match edits {
        HeaderEdits::Whole(list) => replace(target, list),
        HeaderEdits::Changes { set, removed } => apply(target, parse_changes(set, removed)?),
    }
}

/// [`HeaderEdits::Changes`] parsed: each run of one name in `set` is one changed name.
fn parse_changes(set: &[(String, Vec<u8>)], removed: &[String]) -> Result<Edits, String> {
    let parse_name =
        |name: &str| HeaderName::from_bytes(name.as_bytes()).map_err(|e| cannot_send(name, &e));
    let mut edits = Edits::default();
    for run in set.chunk_by(|(a, _), (b, _)| a == b) {
        let name = run[0].0.as_str();
        let values = run
            .iter()
            .map(|(_, v)| HeaderValue::from_bytes(v).map_err(|e| cannot_send(name, &e)))
            .collect::<Result<Vec<_>, _>>()?;
        edits.changed.push((parse_name(name)?, values));
    }
    edits.gone = removed
        .iter()
        .map(|name| parse_name(name))
        .collect::<Result<_, _>>()?;
    Ok(edits)
}

/// Why a header from a function's list cannot go on the wire.
fn cannot_send(name: &str, e: &dyn std::fmt::Display) -> String {
    format!("header `{name}` cannot be sent: {e}")
}

/// [`replace`] for the usual case, a few headers of which the function changed one or two:
/// names are compared as text (ignoring case, as header names compare) against the target's,
/// and only a changed name is parsed (and allocated). On the rewrite row this was ~12k instructions per request on the proxy thread
/// with a map of the whole list built first.
fn edits_small(current: &HeaderMap, list: &[(String, Vec<u8>)]) -> Result<Edits, String> {
    let same_name = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // Checked and parsed before anything is touched. A name whose values are what the target
    // has already is valid as it is.
    let mut edits = Edits::default();
    for (at, (name, _)) in list.iter().enumerate() {
        if list[..at].iter().any(|(n, _)| same_name(n, name)) {
            continue;
        }
        let values = || {
            list[at..]
                .iter()
                .filter(move |(n, _)| same_name(n, name))
                .map(|(_, v)| v.as_slice())
        };
        let now = current.get_all(name.as_str());
        if now.iter().map(HeaderValue::as_bytes).eq(values()) {
            continue;
        }
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| cannot_send(name, &e))?;
        let parsed = values()
            .map(|v| HeaderValue::from_bytes(v).map_err(|e| cannot_send(name, &e)))
            .collect::<Result<Vec<_>, _>>()?;
        edits.changed.push((header, parsed));
    }
    edits.gone = current
        .keys()
        .filter(|name| !list.iter().any(|(n, _)| same_name(n, name.as_str())))
        .cloned()
        .collect();
    Ok(edits)
}

/// [`replace`] for many headers: the list grouped by name in an `http::HeaderMap` first.
fn edits_grouped(current: &HeaderMap, list: &[(String, Vec<u8>)]) -> Result<Edits, String> {
    // Sized for what requests carry; past that it grows, up to `http`'s limit, which is an
    // error here rather than a panic.
    let mut wanted = HeaderMap::with_capacity(list.len().min(128));
    for (name, value) in list {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| cannot_send(name, &e))?;
        let value = HeaderValue::from_bytes(value).map_err(|e| cannot_send(name, &e))?;
        wanted
            .try_append(header, value)
            .map_err(|_| format!("{} headers are too many to send", list.len()))?;
    }
    let gone = current
        .keys()
        .filter(|name| !wanted.contains_key(*name))
        .cloned()
        .collect();
    let changed = wanted
        .keys()
        .filter(|name| !current.get_all(*name).iter().eq(wanted.get_all(*name)))
        .map(|name| (name.clone(), wanted.get_all(name).iter().cloned().collect()))
        .collect();
    Ok(Edits { gone, changed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::{RequestHeader, ResponseHeader};

    fn list(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn pairs(map: &http::HeaderMap) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = map
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    fn request(pairs: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in pairs {
            req.append_header((*n).to_owned(), *v).unwrap();
        }
        req
    }

    type Strategy = fn(&mut RequestHeader, &[(String, Vec<u8>)]) -> Result<(), String>;

    fn small(req: &mut RequestHeader, list: &[(String, Vec<u8>)]) -> Result<(), String> {
        apply(req, edits_small(&req.headers, list)?)
    }

    fn grouped(req: &mut RequestHeader, list: &[(String, Vec<u8>)]) -> Result<(), String> {
        apply(req, edits_grouped(&req.headers, list)?)
    }

    /// Without pingora's case map, edits go straight into the `http` map.
    fn uncased(
        req: &mut RequestHeader,
        list: &[(String, Vec<u8>)],
        f: Strategy,
    ) -> Result<(), String> {
        crate::header_case::normalize(req, false, 0);
        assert!(!req.has_case());
        f(req, list)
    }

    /// Both ways of finding the edits and both ways of making them, so each is tested whichever
    /// `replace` picks for an input.
    const STRATEGIES: [(&str, Strategy); 4] = [
        ("small", small),
        ("grouped", grouped),
        ("small, no case map", |r, l| uncased(r, l, small)),
        ("grouped, no case map", |r, l| uncased(r, l, grouped)),
    ];

    #[test]
    fn the_result_is_exactly_the_list_whatever_changed() {
        for (strategy, replace) in STRATEGIES {
            the_result_is_exactly_the_list(strategy, replace);
        }
    }

    fn the_result_is_exactly_the_list(strategy: &str, replace: Strategy) {
        let mut req = request(&[
            ("host", "a"),
            ("x-keep", "1"),
            ("x-gone", "2"),
            ("x-multi", "m1"),
            ("x-multi", "m2"),
            ("x-change", "old"),
        ]);
        replace(
            &mut req,
            &list(&[
                ("host", "a"),
                ("x-multi", "m2"),
                ("x-keep", "1"),
                ("x-multi", "m1"),
                ("x-change", "new"),
                ("x-added", "3"),
            ]),
        )
        .unwrap();
        // Compared per name, values in order (a HeaderMap has no order across names).
        let values = |name: &str| -> Vec<&str> {
            req.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(
            req.headers.keys_len(),
            5,
            "{strategy}: {:?}",
            pairs(&req.headers)
        );
        assert_eq!(values("host"), ["a"], "{strategy}");
        assert_eq!(values("x-keep"), ["1"], "{strategy}");
        assert_eq!(values("x-multi"), ["m2", "m1"], "{strategy}");
        assert_eq!(values("x-change"), ["new"], "{strategy}");
        assert_eq!(values("x-added"), ["3"], "{strategy}");
        assert!(values("x-gone").is_empty(), "{strategy}");
    }

    #[test]
    fn a_name_written_in_capitals_joins_its_lower_case_values() {
        // Not what verge's readers give (they lower-case names), but kept right all the same:
        // header names compare without case.
        for (strategy, replace) in STRATEGIES {
            let mut req = request(&[("x-a", "old"), ("X-Keep", "k")]);
            replace(
                &mut req,
                &list(&[("X-A", "1"), ("x-keep", "k"), ("x-a", "2")]),
            )
            .unwrap();
            let values: Vec<_> = req.headers.get_all("x-a").iter().collect();
            assert_eq!(values, ["1", "2"], "{strategy}");
            let kept: Vec<_> = req.headers.get_all("x-keep").iter().collect();
            assert_eq!(kept, ["k"], "{strategy}");
        }
    }

    #[test]
    fn an_empty_list_removes_everything() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("x-a", "1").unwrap();
        replace(&mut resp, &[]).unwrap();
        assert!(resp.headers.is_empty());
    }

    /// `change` fails with an error naming `bad` and leaves the request as it was.
    fn refused(
        what: &str,
        bad: &str,
        change: impl FnOnce(&mut RequestHeader) -> Result<(), String>,
    ) {
        let before = [("x-a", "1"), ("x-b", "2")];
        let mut req = request(&before);
        let err = change(&mut req).unwrap_err();
        assert!(err.contains(bad), "{what}: {err}");
        let untouched = pairs(&request(&before).headers);
        assert_eq!(pairs(&req.headers), untouched, "{what}");
    }

    #[test]
    fn a_bad_name_or_value_is_an_error_naming_it_and_changes_nothing() {
        for (strategy, replace) in STRATEGIES {
            for (bad, wanted) in [
                ("x-bad", list(&[("x-a", "changed"), ("x-bad", "a\nb")])),
                ("bad name", list(&[("x-a", "changed"), ("bad name", "v")])),
            ] {
                refused(strategy, bad, |req| replace(req, &wanted));
            }
        }
    }

    #[test]
    fn more_headers_than_http_can_hold_is_an_error_not_a_panic() {
        let wanted: Vec<(String, Vec<u8>)> = (0..40_000)
            .map(|i| (format!("x-{i}"), b"v".to_vec()))
            .collect();
        let mut req = request(&[("x-a", "1")]);
        let err = replace(&mut req, &wanted).unwrap_err();
        assert!(err.contains("too many"), "{err}");
        assert_eq!(req.headers.len(), 1, "left untouched");
    }

    #[test]
    fn thousands_of_headers_are_applied_in_linear_time() {
        // A viewer may send thousands of tiny headers, and a function may return more; grouping
        // them by searching a list would be quadratic on the proxy thread. (`http` caps a map
        // near 24,000 entries; past that `replace` answers an error, not a panic.)
        let names: Vec<String> = (0..20_000).map(|i| format!("x-{i}")).collect();
        let mut req = request(&[]);
        let wanted: Vec<(String, Vec<u8>)> =
            names.iter().map(|n| (n.clone(), b"v".to_vec())).collect();
        let started = std::time::Instant::now();
        replace(&mut req, &wanted).unwrap();
        replace(&mut req, &wanted).unwrap();
        assert_eq!(req.headers.len(), 20_000);
        // Grouping by searching a list (the first version) needs ~4e8 name comparisons for
        // this, about a second; linear grouping took ~25 ms here. 20× margin.
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_unchanged_header_keeps_the_case_it_arrived_in() {
        // Where pingora keeps a case map (`server.preserve_header_case`).
        for (strategy, replace) in &STRATEGIES[..2] {
            let mut req = request(&[("X-Keep", "1"), ("X-Change", "a")]);
            replace(&mut req, &list(&[("x-keep", "1"), ("x-change", "b")])).unwrap();
            let mut wire = Vec::new();
            req.header_to_h1_wire(&mut wire);
            let wire = String::from_utf8(wire).unwrap();
            assert!(wire.contains("X-Keep: 1"), "{strategy}: {wire}");
            assert!(wire.contains("x-change: b"), "{strategy}: {wire}");
        }
    }

    fn changes(set: &[(&str, &str)], removed: &[&str]) -> HeaderEdits {
        HeaderEdits::Changes {
            set: list(set),
            removed: removed.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn changes_touch_only_the_names_they_name() {
        let before = [
            ("host", "a"),
            ("x-keep", "k"),
            ("x-gone", "g"),
            ("x-multi", "m1"),
            ("x-multi", "m2"),
        ];
        for cased in [true, false] {
            let mut req = request(&before);
            if !cased {
                crate::header_case::normalize(&mut req, false, 0);
            }
            // A value that is not text passes through as the bytes it is.
            req.append_header("x-raw", &b"\xff\xfe"[..]).unwrap();
            let edits = changes(
                &[("x-multi", "n1"), ("x-multi", "n2"), ("x-added", "1")],
                &["x-gone"],
            );
            edit(&mut req, &edits).unwrap();
            let values = |name: &str| -> Vec<&[u8]> {
                req.headers
                    .get_all(name)
                    .iter()
                    .map(http::HeaderValue::as_bytes)
                    .collect()
            };
            assert_eq!(values("host"), [b"a"], "case map kept: {cased}");
            assert_eq!(values("x-keep"), [b"k"], "case map kept: {cased}");
            assert_eq!(values("x-raw"), [b"\xff\xfe"], "case map kept: {cased}");
            assert_eq!(values("x-multi"), [b"n1", b"n2"], "case map kept: {cased}");
            assert_eq!(values("x-added"), [b"1"], "case map kept: {cased}");
            assert!(values("x-gone").is_empty(), "case map kept: {cased}");
            assert_eq!(req.headers.keys_len(), 5, "case map kept: {cased}");
        }
    }

    #[test]
    fn a_bad_change_is_an_error_naming_it_and_changes_nothing() {
        for (bad, edits) in [
            (
                "x-bad",
                changes(&[("x-a", "changed"), ("x-bad", "a\nb")], &[]),
            ),
            ("bad name", changes(&[("x-a", "changed")], &["bad name"])),
        ] {
            refused("changes", bad, |req| edit(req, &edits));
        }
    }

    #[test]
    fn a_whole_list_replaces_every_header() {
        let mut req = request(&[("x-a", "1"), ("x-b", "2")]);
        edit(&mut req, &HeaderEdits::Whole(list(&[("x-b", "3")]))).unwrap();
        assert_eq!(pairs(&req.headers), [("x-b".to_owned(), "3".to_owned())]);
    }
}
