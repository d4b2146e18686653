//! The index commands end to end: `create-index` (a global index, backfilled), `query`,
//! `indexes`, `drop-index`, and indexes as `tables`, `status` and `inspect` show them.

mod common;

use common::{Fixture, TestResult};
use serde_json::Value;

#[test]
fn create_query_show_and_drop_an_index() -> TestResult {
    let f = Fixture::new()?;
    f.ok(&["create-table", "Books"])?;
    for (k, author) in [("b1", "ann"), ("b2", "bob"), ("b3", "ann")] {
        f.ok(&["put", "Books", k, &format!(r#"{{"author":"{author}"}}"#)])?;
    }
    let out = f.ok(&["create-index", "Books", "by_author", "/author", "--json"])?;
    let created: Value = serde_json::from_str(&out)?;
    assert_eq!(created["index"]["ready"], true, "{created}");
    assert_eq!(created["index"]["backfilled"], 3, "{created}");
    assert_eq!(created["index"]["sealed_boundaries"], true, "{created}");

    let q = f.ok(&["query", "Books", "by_author", "--prefix", "ann"])?;
    assert_eq!(
        q,
        "ann\tb1\t{\"author\":\"ann\"}\nann\tb3\t{\"author\":\"ann\"}\n"
    );
    let q = f.ok(&["query", "Books", "by_author", "--reverse", "--limit", "1"])?;
    assert_eq!(q, "bob\tb2\t{\"author\":\"bob\"}\n");

    // `tables`, `status` and `inspect` show the index.
    let tables = f.ok(&["tables"])?;
    assert_eq!(
        tables,
        "Books\tencrypted\n  index by_author json-pointer /author, ready\n"
    );
    let tables: Value = serde_json::from_str(&f.ok(&["tables", "--json"])?)?;
    assert_eq!(tables[0]["indexes"][0]["name"], "by_author", "{tables}");
    let status = f.ok(&["status"])?;
    assert!(
        status.contains("  index        by_author json-pointer /author, ready; boundaries sealed"),
        "{status}"
    );
    f.ok(&["flush"])?;
    let inspect = f.ok(&["inspect", "Books"])?;
    assert!(
        inspect.contains(
            "  index by_author of table Books: boundaries sealed (its keys are attribute values)"
        ),
        "{inspect}"
    );
    // No attribute value in what inspect prints of the index's files.
    let index_part = inspect
        .split("Books/by_author")
        .nth(1)
        .ok_or("no index files in inspect")?;
    assert!(
        !index_part.contains("ann") && !index_part.contains("bob"),
        "{inspect}"
    );
    let layouts: Value = serde_json::from_str(&f.ok(&["inspect", "--json"])?)?;
    let rows = layouts.as_array().ok_or("inspect --json")?;
    assert!(rows
        .iter()
        .any(|r| r["index"]["name"] == "by_author" && r["index"]["sealed_boundaries"] == true));

    // A unique index over items that share a key fails and leaves none behind.
    let r = f.run(&["create-index", "Books", "one_author", "/author", "--unique"])?;
    let (code, err) = (r.code, r.stderr);
    assert_ne!(code, 0);
    assert!(err.contains("one_author"), "{err}");
    assert_eq!(f.ok(&["indexes", "Books"])?.lines().count(), 1);

    f.ok(&["drop-index", "Books", "by_author"])?;
    assert_eq!(f.ok(&["tables"])?, "Books\tencrypted\n");
    let code = f.run(&["query", "Books", "by_author"])?.code;
    assert_ne!(code, 0);
    Ok(())
}
