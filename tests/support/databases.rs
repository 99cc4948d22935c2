//! A migrated template database, made once per migration set and cloned for every test
//! (cloning is much faster than migrating).

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn postgres_url(database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{database}")
}

/// Names the template after the migrations, so a new migration makes a new template.
fn template_name() -> String {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in names.join(",").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3);
    }
    format!("parley_template_{hash:016x}")
}

async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let admin = Database::connect(POSTGRES_ADMIN_URL)
                .await
                .expect("PostgreSQL is up");
            // One builder at a time, across test processes too.
            admin
                .execute_unprepared("SELECT pg_advisory_lock(728411)")
                .await
                .unwrap();
            let exists = admin
                .query_one(sea_orm::Statement::from_string(
                    admin.get_database_backend(),
                    format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
                ))
                .await
                .unwrap()
                .is_some();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building}"))
                    .await
                    .unwrap();
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                let db = Database::connect(postgres_url(&building)).await.unwrap();
                Migrator::up(&db, None).await.expect("migrations apply");
                db.close().await.unwrap();
                admin
                    .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .unwrap();
            }
            admin
                .execute_unprepared("SELECT pg_advisory_unlock(728411)")
                .await
                .unwrap();
            admin.close().await.unwrap();
            name
        })
        .await
}

/// A new, migrated, empty PostgreSQL database; returns its URL.
pub async fn fresh_postgres() -> String {
    let template = template().await;
    let name = format!("parley_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(POSTGRES_ADMIN_URL)
        .await
        .expect("PostgreSQL is up");
    let mut attempts = 0;
    loop {
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await;
        match created {
            Ok(_) => break,
            // Another test may be cloning the same template this instant.
            Err(e) if attempts < 50 && e.to_string().contains("being accessed by other users") => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating a test database: {e}"),
        }
    }
    admin.close().await.unwrap();
    postgres_url(&name)
}
