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
    /// none (the item is not in the index). Of an object's duplicate members the last one
    /// counts (as in a `serde_json::Value` of the document).
    pub(crate) fn keys(&self, value: Option<&[u8]>) -> BTreeSet<Vec<u8>> {
        keys_each([self], value).pop().unwrap_or_default()
    }
}

/// The index keys of `value` for each of `extractors`, in their order: what
/// [`Extractor::keys`] gives each, with one pass over the document for all the JSON
/// pointers among them.
///
/// The pass builds no document tree: it follows the pointers' tokens and only
/// deserializes the pointed-at values as `serde_json::Value`s; every other part is read
/// through the same `serde_json` deserializer (so it is validated exactly as a full parse
/// would: syntax, UTF-8, escapes, number range, nesting limit) and dropped.
pub(crate) fn keys_each<'e>(
    extractors: impl IntoIterator<Item = &'e Extractor>,
    value: Option<&[u8]>,
) -> Vec<BTreeSet<Vec<u8>>> {
    let extractors = extractors.into_iter();
    let mut out: Vec<BTreeSet<Vec<u8>>> = Vec::with_capacity(extractors.size_hint().0);
    let mut pointers: Vec<(usize, &[String])> = Vec::new();
    for (slot, e) in extractors.enumerate() {
        match (e, value) {
            (_, None) => out.push(BTreeSet::new()),
            (Extractor::Named(f), Some(v)) => out.push(f(v).into_iter().collect()),
            (Extractor::JsonPointer(tokens), Some(_)) => {
                out.push(BTreeSet::new());
                pointers.push((slot, tokens.as_slice()));
            }
        }
    }
    if let (Some(v), false) = (value, pointers.is_empty()) {
        if walk_document(v, &pointers, &mut out).is_err() {
            // Not JSON: no pointer gives a key.
            for &(slot, _) in &pointers {
                if let Some(o) = out.get_mut(slot) {
                    o.clear();
                }
            }
        }
    }
    out
}

/// Walks `doc` once for all `pointers` ((result slot, tokens)), filling their slots of
/// `out`; an error if `doc` is not a JSON document (as `serde_json::from_slice` says).
fn walk_document(
    doc: &[u8],
    pointers: &[(usize, &[String])],
    out: &mut [BTreeSet<Vec<u8>>],
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(doc);
    serde::de::DeserializeSeed::deserialize(Walk { pointers, out }, &mut de)?;
    de.end()
}

/// The pointers (result slot, tokens left) that reach one JSON value.
struct Walk<'p, 't, 'o> {
    pointers: &'p [(usize, &'t [String])],
    out: &'o mut [BTreeSet<Vec<u8>>],
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.pointers.iter().any(|(_, rest)| rest.is_empty()) {
            // A pointer ends here: this value is needed whole (rare for the others to go on
            // below it; they are followed in the tree).
            let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
            for &(slot, rest) in self.pointers {
                if let Some(o) = self.out.get_mut(slot) {
                    *o = pointed_keys(&v, rest);
                }
            }
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // A scalar with tokens left: no pointer finds anything below it.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // The element each pointer wants (a token that is no index wants none).
        let wanted: Vec<Option<usize>> = self
            .pointers
            .iter()
            .map(|(_, rest)| rest.first().and_then(|t| t.parse::<usize>().ok()))
            .collect();
        let mut here = Vec::new();
        let mut i = 0usize;
        loop {
            here.clear();
            for (&(slot, rest), w) in self.pointers.iter().zip(&wanted) {
                if *w == Some(i) {
                    here.push((slot, rest.get(1..).unwrap_or_default()));
                }
            }
            let more = if here.is_empty() {
                seq.next_element::<Skip>()?.is_some()
            } else {
                seq.next_element_seed(Walk {
                    pointers: &here,
                    out: &mut *self.out,
                })?
                .is_some()
            };
            if !more {
                return Ok(());
            }
            i = i.saturating_add(1);
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut here = Vec::new();
        while let Some(()) = map.next_key_seed(Member {
            pointers: self.pointers,
            here: &mut here,
        })? {
            if here.is_empty() {
                map.next_value::<Skip>()?;
                continue;
            }
            // A later duplicate member replaces an earlier one's findings.
            for &(slot, _) in &here {
                if let Some(o) = self.out.get_mut(slot) {
                    o.clear();
                }
            }
            map.next_value_seed(Walk {
                pointers: &here,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
}

/// An object member's name: collects into `here` the pointers whose next token it is.
struct Member<'p, 't, 'h> {
    pointers: &'p [(usize, &'t [String])],
    here: &'h mut Vec<(usize, &'t [String])>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Member<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Member<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<(), E> {
        self.here.clear();
        for &(slot, rest) in self.pointers {
            if let Some((token, below)) = rest.split_first() {
                if token == name {
                    self.here.push((slot, below));
                }
            }
        }
        Ok(())
    }
}

/// Any JSON value, read (and so validated) through the deserializer and dropped.
struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        // `deserialize_any`, not `deserialize_ignored_any`: the same reading of strings
        // and numbers as a `serde_json::Value` gets.
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// The keys at `tokens` below `v` (see [`Extractor::keys`]).
fn pointed_keys(v: &serde_json::Value, tokens: &[String]) -> BTreeSet<Vec<u8>> {
    let mut at = v;
    for t in tokens {
        let next = match at {
            serde_json::Value::Object(m) => m.get(t.as_str()),
            serde_json::Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
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
    use proptest::prelude::*;

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

    /// JSON text for the property test, written by hand so that it can hold what a
    /// serializer never writes: duplicate members, escaped and surrogate-pair characters,
    /// odd whitespace, numbers out of range.
    #[derive(Clone, Debug)]
    enum Doc {
        Null,
        Bool(bool),
        /// Number text as written (`-0`, `1e400`, `01`: some valid, some not).
        Num(&'static str),
        Str(String, bool),
        Arr(Vec<Doc>),
        /// Members in order; names may repeat.
        Obj(Vec<((String, bool), Doc)>),
    }

    /// Writes `s` as a JSON string; `escape` spells some characters as `\u` escapes
    /// (surrogate pairs beyond the BMP) or short escapes.
    fn put_str(out: &mut String, s: &str, escape: bool) {
        out.push('"');
        for (i, c) in s.chars().enumerate() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if escape => out.push_str("\\/"),
                c if (c as u32) < 0x20 || (escape && i % 2 == 0) => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    fn put_doc(out: &mut String, d: &Doc) {
        match d {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(n),
            Doc::Str(s, e) => put_str(out, s, *e),
            Doc::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    put_doc(out, v);
                }
                out.push(']');
            }
            Doc::Obj(members) => {
                out.push_str("{ ");
                for (i, ((k, e), v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    put_str(out, k, *e);
                    out.push_str(" :");
                    put_doc(out, v);
                }
                out.push('}');
            }
        }
    }

    /// Names and tokens from one small alphabet, so that pointers hit members.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just("a/b".to_owned()),
            Just("~".to_owned()),
            Just("é€".to_owned()),
            Just("😀".to_owned()),
            Just("".to_owned()),
            Just("\u{1}\n".to_owned()),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        let leaf = prop_oneof![
            Just(Doc::Null),
            any::<bool>().prop_map(Doc::Bool),
            prop::sample::select(vec![
                "0",
                "-0",
                "12",
                "-7",
                "1.5",
                "1e2",
                "-2.50E-3",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775809",
                "1e400",
                "01",
                "1.",
                "+1",
            ])
            .prop_map(Doc::Num),
            (name(), any::<bool>()).prop_map(|(s, e)| Doc::Str(s, e)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Doc::Arr),
                prop::collection::vec(((name(), any::<bool>()), inner), 0..4).prop_map(Doc::Obj),
            ]
        })
    }

    /// What a full parse gives (the extractor before the one-pass walk).
    fn full_parse_keys(tokens: &[String], value: &[u8]) -> BTreeSet<Vec<u8>> {
        match serde_json::from_slice::<serde_json::Value>(value) {
            Ok(doc) => pointed_keys(&doc, tokens),
            Err(_) => BTreeSet::new(),
        }
    }

    proptest! {
        /// The one-pass walk gives, for every pointer, exactly what a full parse of the
        /// document into a `serde_json::Value` gives: on valid and invalid text (a cut or
        /// a changed byte), with duplicate members (the last one counts), escapes,
        /// non-ASCII text, nested arrays and objects.
        #[test]
        fn one_pass_walk_agrees_with_a_full_parse(
            d in doc(),
            pointers in prop::collection::vec(prop::collection::vec(name(), 0..4), 1..4),
            cut in any::<prop::sample::Index>(),
            poke in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            damage in 0u8..4,
        ) {
            let mut text = String::new();
            put_doc(&mut text, &d);
            let mut bytes = text.into_bytes();
            match damage {
                1 => bytes.truncate(cut.index(bytes.len() + 1)),
                2 if !bytes.is_empty() => {
                    let i = poke.index(bytes.len());
                    bytes[i] = byte;
                }
                3 => bytes.extend_from_slice(b" x"),
                _ => {}
            }
            let extractors: Vec<Extractor> =
                pointers.iter().cloned().map(Extractor::JsonPointer).collect();
            let got = keys_each(&extractors, Some(bytes.as_slice()));
            for (tokens, got) in pointers.iter().zip(&got) {
                prop_assert_eq!(got, &full_parse_keys(tokens, &bytes));
            }
            prop_assert_eq!(&extractors[0].keys(Some(bytes.as_slice())), &got[0]);
            prop_assert!(keys_each(&extractors, None).iter().all(BTreeSet::is_empty));
        }
    }

    #[test]
    fn duplicate_members_last_one_counts_and_named_extractors_mix_in() {
        assert_eq!(keys("/a", r#"{"a":"x","a":"y"}"#), ["y"]);
        assert!(keys("/a/b", r#"{"a":{"b":1},"a":2}"#).is_empty());
        assert_eq!(keys("/a/b", r#"{"a":2,"a":{"b":1}}"#), ["1"]);
        assert_eq!(keys("/a", r#"{"a":"\u00e9\ud83d\ude00"}"#), ["é😀"]);
        assert!(
            keys("/a", r#"{"a":"\ud83d"}"#).is_empty(),
            "a lone surrogate is not JSON"
        );
        assert!(keys("/a", r#"{"a":1} x"#).is_empty());
        let mut r = IndexExtractors::new();
        r.register("len", |v| vec![v.len().to_string().into_bytes()]);
        let named = Extractor::resolve(ExtractorKind::Named, "len", &r).unwrap();
        let both = [
            Extractor::JsonPointer(parse_pointer("/a").unwrap_or_default()),
            named,
            Extractor::JsonPointer(parse_pointer("/b/0").unwrap_or_default()),
            Extractor::JsonPointer(parse_pointer("").unwrap_or_default()),
        ];
        let got = keys_each(&both, Some(br#"{"a":"x","b":[true,2]}"#.as_slice()));
        let want: Vec<BTreeSet<Vec<u8>>> = vec![
            [b"x".to_vec()].into(),
            [b"22".to_vec()].into(),
            [b"true".to_vec()].into(),
            BTreeSet::new(),
        ];
        assert_eq!(got, want);
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
