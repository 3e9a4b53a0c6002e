//! The crash-test child (filled in below).
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {}
pub async fn run_child(_a: ChaosArgs) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
