use parley_api::{Application, Settings, billing, db, observability};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: parley                          serve the API\n       \
                     parley import-rate-card FILE    replace the rate card (CSV)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    observability::init_logging(settings.log_format);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await
        }
        [command, file] if command == "import-rate-card" => {
            let csv = std::fs::read(file)?;
            let (db, _) = db::connect(&settings).await?;
            let rows = billing::book::import_into(&db, &csv)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{rows} rate card rows imported; running servers use them within 30 s");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}
