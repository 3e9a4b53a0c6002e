//! `holdfast bench` (filled in below).
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {}
pub async fn run(_a: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
