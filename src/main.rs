fn main() -> std::process::ExitCode {
    let cli = roomd::app::cli::parse();
    roomd::telemetry::logs::init(cli.settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(roomd::app::commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
