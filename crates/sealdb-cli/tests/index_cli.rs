//! The index commands end to end: `create-index` (a global index, backfilled), `query`,
//! `indexes`, `drop-index`, and indexes as `tables`, `status` and `inspect` show them.

mod common;

use common::{Fixture, Run, TestResult};
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

#[test]
fn create_table_with_local_indexes_then_query_and_show_them() -> TestResult {
    let f = Fixture::new()?;
    f.ok(&[
        "create-table",
        "People",
        "--index",
        "by_city=/city",
        "--index",
        "by_mail=/mail,unique",
    ])?;
    for (k, city, mail) in [
        ("p1", "oslo", "a@x"),
        ("p2", "rome", "b@x"),
        ("p3", "oslo", "c@x"),
    ] {
        f.ok(&[
            "put",
            "People",
            k,
            &format!(r#"{{"city":"{city}","mail":"{mail}"}}"#),
        ])?;
    }
    // A duplicate of a unique local index key is refused.
    let Run {
        code, stderr: err, ..
    } = f.run(&["put", "People", "p4", r#"{"city":"oslo","mail":"a@x"}"#])?;
    assert_ne!(code, 0);
    assert!(err.contains("by_mail"), "{err}");
    let q = f.ok(&["query", "People", "by_city", "--prefix", "oslo"])?;
    assert_eq!(
        q,
        "oslo\tp1\t{\"city\":\"oslo\",\"mail\":\"a@x\"}\noslo\tp3\t{\"city\":\"oslo\",\"mail\":\"c@x\"}\n"
    );
    let q = f.ok(&["query", "People", "by_mail", "--reverse", "--limit", "1"])?;
    assert_eq!(q, "c@x\tp3\t{\"city\":\"oslo\",\"mail\":\"c@x\"}\n");
    // The table's own scan shows its items only.
    assert_eq!(f.ok(&["scan", "People"])?.lines().count(), 3);
    let tables = f.ok(&["tables"])?;
    assert_eq!(
        tables,
        "People\tencrypted\n  index by_city local json-pointer /city, ready\n  \
         index by_mail local json-pointer /mail, unique, ready\n"
    );
    let status = f.ok(&["status"])?;
    assert!(
        status.contains("by_city local json-pointer /city, ready"),
        "{status}"
    );
    f.ok(&["flush"])?;
    let inspect = f.ok(&["inspect", "People"])?;
    assert!(
        inspect.contains("local indexes by_city, by_mail: their entries live in these files"),
        "{inspect}"
    );
    // Sealed boundaries: no attribute value in what inspect prints.
    assert!(
        !inspect.contains("oslo") && !inspect.contains("a@x"),
        "{inspect}"
    );
    // `--json` names them too, on the table's row.
    let layouts: Value = serde_json::from_str(&f.ok(&["inspect", "People", "--json"])?)?;
    let row = layouts
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["table"] == "People"))
        .ok_or("no People row in inspect --json")?;
    assert_eq!(
        row["local_indexes"],
        serde_json::json!(["by_city", "by_mail"]),
        "{layouts}"
    );
    let Run {
        code, stderr: err, ..
    } = f.run(&["drop-index", "People", "by_city"])?;
    assert_ne!(code, 0);
    assert!(err.contains("local"), "{err}");
    let Run {
        code, stderr: err, ..
    } = f.run(&["create-table", "Bad", "--index", "nopointer"])?;
    assert_ne!(code, 0);
    assert!(err.contains("--index"), "{err}");
    Ok(())
}
