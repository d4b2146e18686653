//! Index key extractors: from an item's value to zero or more index keys.
//!
//! Two kinds, as the catalogue records them (`ExtractorKind`):
//! - a JSON pointer (RFC 6901, `/author`, `/address/city`) into values that are JSON
//!   documents; declarative, so it is stored whole in the catalogue and usable from the CLI;
//! - a named Rust extractor that the application registers in `Options::index_extractors`
//!   at every open (like a comparator or merge operator: only its name is recorded, and an
//!   open without it is refused).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::manifest::ExtractorKind;

/// A named Rust index key extractor: the index keys of one value (none: not indexed).
pub type ExtractorFn = dyn Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync;

/// The named extractors an application registers at every open, for indexes declared with
/// [`IndexSpec::named`](crate::IndexSpec::named). Opening a database whose catalogue names
/// one that is not registered is an error.
#[derive(Clone, Default)]
pub struct IndexExtractors {
    by_name: HashMap<String, Arc<ExtractorFn>>,
}

impl IndexExtractors {
    /// An empty registry.
    pub fn new() -> IndexExtractors {
        IndexExtractors::default()
    }

    /// Registers `f` under `name` (replacing any earlier one of that name). It must give
    /// the same keys for the same value at every open: the index holds what it gave.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.by_name.insert(name.into(), Arc::new(f));
        self
    }

    fn get(&self, name: &str) -> Option<Arc<ExtractorFn>> {
        self.by_name.get(name).cloned()
    }
}

impl fmt::Debug for IndexExtractors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_set().entries(names).finish()
    }
}

/// A resolved extractor.
#[derive(Clone)]
pub(crate) enum Extractor {
    /// RFC 6901 reference tokens, already unescaped.
    JsonPointer(Vec<String>),
    Named(Arc<ExtractorFn>),
}

impl fmt::Debug for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extractor::JsonPointer(t) => write!(f, "JsonPointer({t:?})"),
            Extractor::Named(_) => f.write_str("Named"),
        }
    }
}

/// Parses an RFC 6901 pointer: `""` (the whole document) or `/token(/token)*`, with `~1`
/// for `/` and `~0` for `~`.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<String>> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: &str| Error::InvalidArgument(format!("JSON pointer {pointer:?}: {why}"));
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| bad("must start with '/'"))?;
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(bad("'~' must be followed by 0 or 1")),
                }
            }
            Ok(out)
        })
        .collect()
}

impl Extractor {
    /// Resolves a catalogue entry; a named extractor must be registered.
    pub(crate) fn resolve(
        kind: ExtractorKind,
        spec: &str,
        registered: &IndexExtractors,
    ) -> Result<Extractor> {
        match kind {
            ExtractorKind::JsonPointer => parse_pointer(spec).map(Extractor::JsonPointer),
            ExtractorKind::Named => registered.get(spec).map(Extractor::Named).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "index extractor {spec:?} is not registered in Options::index_extractors \
                     (it must be registered at every open of a database whose indexes use it)"
                ))
            }),
        }
    }

    /// The distinct index keys of `value` (none for an absent value).
    ///
    /// JSON pointer: a string gives its UTF-8 bytes; a number, `true` or `false` its JSON
    /// text; an array gives the keys of each of its scalar elements (a multi-valued
    /// attribute); `null`, an object, a missing member or a value that is not JSON gives
    /// none (the item is not in the index).
    pub(crate) fn keys(&self, value: Option<&[u8]>) -> BTreeSet<Vec<u8>> {
        let Some(value) = value else {
            return BTreeSet::new();
        };
        match self {
            Extractor::Named(f) => f(value).into_iter().collect(),
            Extractor::JsonPointer(tokens) => {
                let Ok(doc) = serde_json::from_slice::<serde_json::Value>(value) else {
                    return BTreeSet::new();
                };
                let mut at = &doc;
                for t in tokens {
                    let next = match at {
                        serde_json::Value::Object(m) => m.get(t.as_str()),
                        serde_json::Value::Array(a) => {
                            t.parse::<usize>().ok().and_then(|i| a.get(i))
                        }
                        _ => None,
                    };
                    match next {
                        Some(v) => at = v,
                        None => return BTreeSet::new(),
                    }
                }
                let mut out = BTreeSet::new();
                match at {
                    serde_json::Value::Array(items) => {
                        for v in items {
                            out.extend(scalar_key(v));
                        }
                    }
                    v => out.extend(scalar_key(v)),
                }
                out
            }
        }
    }
}

fn scalar_key(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Number(n) => Some(n.to_string().into_bytes()),
        serde_json::Value::Bool(b) => Some(b.to_string().into_bytes()),
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pointer: &str, doc: &str) -> Vec<String> {
        let e = Extractor::JsonPointer(parse_pointer(pointer).unwrap_or_default());
        e.keys(Some(doc.as_bytes()))
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    #[test]
    fn pointers_pick_scalars_and_array_elements() {
        assert_eq!(keys("/author", r#"{"author":"ann"}"#), ["ann"]);
        assert_eq!(
            keys("/address/city", r#"{"address":{"city":"Oslo"}}"#),
            ["Oslo"]
        );
        assert_eq!(
            keys("/tags", r#"{"tags":["b","a","b",1]}"#),
            ["1", "a", "b"]
        );
        assert_eq!(keys("/a~1b", r#"{"a/b":true}"#), ["true"]);
        assert_eq!(keys("/n", r#"{"n":12}"#), ["12"]);
        assert!(keys("/missing", r#"{"a":1}"#).is_empty());
        assert!(keys("/a", r#"{"a":null}"#).is_empty());
        assert!(keys("/a", r#"{"a":{"b":1}}"#).is_empty());
        assert!(keys("/a", "not json").is_empty());
        assert_eq!(keys("/1", r#"["x","y"]"#), ["y"]);
    }

    #[test]
    fn bad_pointers_are_refused() {
        assert!(parse_pointer("author").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert_eq!(parse_pointer("").ok(), Some(vec![]));
    }

    #[test]
    fn unregistered_named_extractor_is_an_error() {
        let r = IndexExtractors::new();
        assert!(Extractor::resolve(ExtractorKind::Named, "lower", &r).is_err());
        let mut r = IndexExtractors::new();
        r.register("lower", |v| vec![v.to_ascii_lowercase()]);
        let e = Extractor::resolve(ExtractorKind::Named, "lower", &r);
        assert!(matches!(e, Ok(Extractor::Named(_))));
    }
}
