//! A plain `cargo test` leaves its PostgreSQL test schemas behind; a later test process drops
//! those made more than an hour ago, and none younger.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;
use uuid::{NoContext, Timestamp, Uuid};

fn schema_made(ago: Duration) -> String {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - ago;
    let id = Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        at.as_secs(),
        at.subsec_nanos(),
    ));
    format!("t_{}", id.simple())
}

async fn exists(admin: &mut sqlx::PgConnection, schema: &str) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_optional(admin)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn schemas_older_than_an_hour_are_swept_and_younger_ones_kept() {
    // The test database's URL (and CI's rule that PostgreSQL must answer) as every test has it.
    let Some(url) = msa_testkit::postgres_url().await else {
        return;
    };
    let mut admin = PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let old = schema_made(Duration::from_secs(2 * 3600));
    let young = schema_made(Duration::from_secs(50 * 60));
    for schema in [&old, &young] {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    // Not a test schema, though its name starts alike: never touched.
    let other = "t_not_a_test_schema";
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {other}"))
        .execute(&mut admin)
        .await
        .unwrap();

    msa_testkit::databases::sweep_stale_schemas(&mut admin).await;

    assert!(!exists(&mut admin, &old).await, "two hours old: dropped");
    assert!(exists(&mut admin, &young).await, "50 minutes old: kept");
    assert!(
        exists(&mut admin, other).await,
        "not named by a UUIDv7: kept"
    );
    for schema in [young.as_str(), other] {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
