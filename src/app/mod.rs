//! The process: the command line, its settings, and the server it builds from every other folder.

pub mod cli;
pub mod config;
pub mod startup;
