use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = roomd::app::cli::Cli::parse();
    if let Err(e) = roomd::telemetry::logs::init() {
        eprintln!("roomd: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(roomd::app::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
