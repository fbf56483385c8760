//! `emod serve`

use std::process::ExitCode;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (overrides server.listen / EMO_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Once the daemon is ready (storage migrated, socket bound), write the address it listens on
    /// to FILE (replaced atomically). With `--listen 127.0.0.1:0` the system picks a free port and
    /// this file is how a supervisor or a test learns it, without a window in which another
    /// process could take a port chosen in advance.
    #[arg(long, value_name = "FILE")]
    pub port_file: Option<std::path::PathBuf>,
}

pub fn run(args: Args, mut config: Config) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            anyhow::bail!("--listen `{listen}` is not an address like 127.0.0.1:7878");
        }
        config.server.listen = listen;
    }
    super::init_logging(&config);
    actix_web::rt::System::new().block_on(crate::api::serve(config, args.port_file))?;
    Ok(ExitCode::SUCCESS)
}
