//! The process: the command line, its settings, and the server it builds from every other folder.

pub mod account_commands;
pub mod cli;
pub mod commands;
pub mod config;
pub mod database;
pub mod janus_node;
pub mod media;
pub mod serve;
pub mod setting_values;
pub mod startup;
