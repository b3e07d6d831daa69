//! COPY FROM STDIN (text and CSV) and COPY TO STDOUT (table and query),
//! byte-exact against what PostgreSQL 15 produces for the same data.

mod common;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, TryStreamExt};
use rust_decimal::Decimal;
use std::str::FromStr;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn copy_in(client: &Client, sql: &str, data: &str) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in::<_, Bytes>(sql).await?;
    futures::pin_mut!(sink);
    // Send in small pieces so that rows span CopyData messages.
    for piece in data.as_bytes().chunks(7) {
        sink.send(Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> String {
    let stream = client
        .copy_out(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.try_next().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).expect("COPY output is UTF-8")
}

const TEXT_IN: &str = "1\tplain\t1.50\t2024-01-02\tt\n\
2\ttab\\there\t\\N\t\\N\tf\n\
3\tnew\\nline back\\\\slash\t-0.25\t1969-12-31\t\\N\n";

const CSV_IN: &str = "id,s,amt,d,flag\n\
10,\"comma, inside\",3.00,2024-03-01,true\n\
11,\"quote \"\"q\"\"\",,2024-03-02,false\n\
12,\"multi\nline\",4.5,,\n\
13,\"\",0,2000-01-01,t\n";

#[tokio::test]
async fn copy_text_and_csv_round_trip() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE c (id int8 PRIMARY KEY, s text, amt numeric(10,2), d date, flag bool)",
    )
    .await
    .unwrap();

    assert_eq!(copy_in(&c, "COPY c FROM STDIN", TEXT_IN).await.unwrap(), 3);
    assert_eq!(
        copy_in(
            &c,
            "COPY c FROM STDIN WITH (FORMAT csv, HEADER true)",
            CSV_IN
        )
        .await
        .unwrap(),
        4
    );

    // What was stored, read back in binary.
    let rows = c
        .query("SELECT id, s, amt FROM c ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, Option<String>, Option<Decimal>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let d = |s: &str| Some(Decimal::from_str(s).unwrap());
    assert_eq!(
        got,
        vec![
            (1, Some("plain".into()), d("1.50")),
            (2, Some("tab\there".into()), None),
            (3, Some("new\nline back\\slash".into()), d("-0.25")),
            (10, Some("comma, inside".into()), d("3.00")),
            (11, Some("quote \"q\"".into()), None),
            (12, Some("multi\nline".into()), d("4.50")),
            (13, Some(String::new()), d("0")), // quoted empty CSV field is '' not NULL
        ]
    );

    // COPY (query) TO STDOUT, text format: escapes, \N, numeric scale, bool as t/f.
    let out = copy_out(&c, "COPY (SELECT * FROM c ORDER BY id) TO STDOUT").await;
    assert_eq!(
        out,
        "1\tplain\t1.50\t2024-01-02\tt\n\
         2\ttab\\there\t\\N\t\\N\tf\n\
         3\tnew\\nline back\\\\slash\t-0.25\t1969-12-31\t\\N\n\
         10\tcomma, inside\t3.00\t2024-03-01\tt\n\
         11\tquote \"q\"\t\\N\t2024-03-02\tf\n\
         12\tmulti\\nline\t4.50\t\\N\t\\N\n\
         13\t\t0.00\t2000-01-01\tt\n"
    );

    // COPY (query) TO STDOUT as CSV with a header.
    let out = copy_out(
        &c,
        "COPY (SELECT id, s, amt FROM c WHERE id >= 10 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
    )
    .await;
    assert_eq!(
        out,
        "id,s,amt\n\
         10,\"comma, inside\",3.00\n\
         11,\"quote \"\"q\"\"\",\n\
         12,\"multi\nline\",4.50\n\
         13,\"\",0.00\n"
    );

    // COPY table TO STDOUT: every row exactly once (order not asserted).
    let out = copy_out(&c, "COPY c TO STDOUT").await;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_by_key(|l| l.split('\t').next().unwrap().parse::<i64>().unwrap());
    assert_eq!(lines.len(), 7, "{out:?}");
    assert_eq!(lines[0], "1\tplain\t1.50\t2024-01-02\tt");
    assert_eq!(lines[6], "13\t\t0.00\t2000-01-01\tt");

    // COPY with a column list.
    let out = copy_out(&c, "COPY c (id, flag) TO STDOUT").await;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut expected = vec![
        "1\tt", "2\tf", "3\t\\N", "10\tt", "11\tf", "12\t\\N", "13\tt",
    ];
    expected.sort();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn bad_copy_input_is_rejected_atomically() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE b (id int8 PRIMARY KEY, v int4)")
        .await
        .unwrap();
    assert_eq!(
        copy_in(&c, "COPY b FROM STDIN", "1\t10\n").await.unwrap(),
        1
    );

    // The third line has a bad integer: the whole COPY fails with 22P02.
    let err = copy_in(&c, "COPY b FROM STDIN", "2\t20\n3\t30\n4\tforty\n5\t50\n")
        .await
        .expect_err("a bad integer in COPY input must fail the COPY");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{err:?}"
    );

    // Wrong number of columns.
    let err = copy_in(&c, "COPY b FROM STDIN", "6\t60\textra\n")
        .await
        .expect_err("an extra column in COPY input must fail the COPY");
    assert!(err.code().is_some(), "expected a server error, got {err:?}");

    // None of the failed COPYs' rows were applied, and the session still works.
    let rows = simple_rows(&c, "SELECT id, v FROM b ORDER BY id").await;
    assert_eq!(
        rows,
        vec![vec![Some("1".to_string()), Some("10".to_string())]]
    );
}

/// COPY reads dates and times in PostgreSQL's input forms (no seconds, `T`,
/// zones, month names, `infinity`), as casts do, and a bad one fails the
/// whole COPY with 22007 / 22008.
#[tokio::test]
async fn copy_reads_postgres_date_time_forms() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id int8 PRIMARY KEY, a timestamp, b timestamptz, d date, t time)",
    )
    .await
    .unwrap();
    let data = "1\t2024-01-01 10:00\t2024-01-01T10:00+02\tJanuary 8, 1999\t4:05 pm\n\
                2\tinfinity\t-infinity\t-infinity\t24:00\n\
                3\t20240102T101112\t2024-07-01 10:00 Europe/Oslo\t03/04/2030\t10:00:00.5\n";
    assert_eq!(copy_in(&c, "COPY t FROM STDIN", data).await.unwrap(), 3);
    assert_eq!(
        copy_out(&c, "COPY t TO STDOUT").await,
        "1\t2024-01-01 10:00:00\t2024-01-01 08:00:00+00\t1999-01-08\t16:05:00\n\
         2\tinfinity\t-infinity\t-infinity\t24:00:00\n\
         3\t2024-01-02 10:11:12\t2024-07-01 08:00:00+00\t2030-03-04\t10:00:00.5\n"
    );
    for (line, code) in [
        (
            "4\tnot a time\t\\N\t\\N\t\\N\n",
            SqlState::INVALID_DATETIME_FORMAT,
        ),
        (
            "4\t\\N\t\\N\t2024-02-30\t\\N\n",
            SqlState::DATETIME_FIELD_OVERFLOW,
        ),
    ] {
        let err = copy_in(&c, "COPY t FROM STDIN", line)
            .await
            .expect_err("a bad date/time must fail the COPY");
        assert_eq!(err.code(), Some(&code), "{err:?}");
    }
    let rows = simple_rows(&c, "SELECT count(*) FROM t").await;
    assert_eq!(rows, vec![vec![Some("3".to_string())]]);
}
