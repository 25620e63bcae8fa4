//! `scimsync demo` and `scimsync sim`.

pub async fn run(_dir: &std::path::Path) -> anyhow::Result<u8> {
    anyhow::bail!("the demo is not wired yet")
}

pub async fn sim(_args: crate::SimArgs) -> anyhow::Result<u8> {
    anyhow::bail!("the emulators are not wired yet")
}
