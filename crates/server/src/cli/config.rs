//! `countersign config show [SECTION]`: the configuration in effect.

use std::io::Write;

use clap::Subcommand;

use super::load_config;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration in effect, every default filled in and secrets left out (a
    /// secret shows the file or environment variable it is read from), as TOML.
    Show {
        /// Only this section, e.g. `deliver_otp` or `directory`.
        section: Option<String>,
    },
}

pub fn run_config(path: &std::path::Path, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show { section } => {
            let text = load_config(path)?.show(section.as_deref())?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
