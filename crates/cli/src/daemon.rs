//! `scimsync daemon`.

pub async fn run(_config: &std::path::Path) -> anyhow::Result<u8> {
    anyhow::bail!("the daemon is not wired yet")
}
