//! Names with their values, grouped once: the event builders group query parameters, headers
//! and cookies by name, then write and compare them group by group.

use std::borrow::Cow;

/// Names with their values in first-seen order, looked up by name without rescanning: past a
/// few names an index is kept (a request can carry hundreds of headers, and grouping or
/// validating them must stay linear).
#[derive(Debug)]
pub struct Grouped<'a, T> {
    entries: Vec<(Cow<'a, str>, Vec<T>)>,
    index: Option<foldhash::HashMap<Cow<'a, str>, usize>>,
}

impl<'a, T> Grouped<'a, T> {
    /// Entries searched linearly before an index is built.
    const LINEAR: usize = 8;

    /// No names.
    pub fn empty() -> Self {
        Grouped {
            entries: Vec::new(),
            index: None,
        }
    }

    /// Group `(name, value)` pairs by name, names in first-seen order.
    pub fn group(pairs: impl IntoIterator<Item = (Cow<'a, str>, T)>) -> Self {
        let mut grouped = Self::empty();
        for (name, value) in pairs {
            match grouped.position(&name) {
                Some(i) => grouped.entries[i].1.push(value),
                None => {
                    if let Some(index) = &mut grouped.index {
                        index.insert(name.clone(), grouped.entries.len());
                    } else if grouped.entries.len() == Self::LINEAR {
                        grouped.index = Some(
                            grouped
                                .entries
                                .iter()
                                .enumerate()
                                .map(|(i, (n, _))| (n.clone(), i))
                                .chain([(name.clone(), grouped.entries.len())])
                                .collect(),
                        );
                    }
                    grouped.entries.push((name, vec![value]));
                }
            }
        }
        grouped
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.entries.iter().position(|(n, _)| n == name),
        }
    }

    /// The values of `name`.
    pub fn get(&self, name: &str) -> Option<&[T]> {
        self.position(name).map(|i| self.entries[i].1.as_slice())
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each name with its values, in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[T])> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_slice()))
    }
}
