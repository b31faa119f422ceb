pub fn run(_dir: Option<std::path::PathBuf>, _docs: usize) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
