use parley_api::{Application, Settings, observability};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    observability::init_logging(settings.log_format);
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}
