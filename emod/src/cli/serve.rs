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
    // Under systemd (`Type=notify`): READY=1 once the API answers. The daemon says when it
    // serves by writing the port file, so one is kept in a private temporary directory when
    // none was asked for.
    let mut port_file = args.port_file;
    let _notify_dir = if super::systemd::notify_wanted() {
        let (file, dir) = match &port_file {
            Some(f) => (f.clone(), None),
            None => {
                let dir = tempfile::Builder::new().prefix("emod-ready").tempdir()?;
                (dir.path().join("port"), Some(dir))
            }
        };
        port_file = Some(file.clone());
        super::systemd::notify_when_ready(file);
        dir
    } else {
        None
    };
    actix_web::rt::System::new().block_on(crate::api::serve(config, port_file))?;
    Ok(ExitCode::SUCCESS)
}
