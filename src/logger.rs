//! A small `log` backend: `RUST_LOG`-style filters (`info`, `sio_edge=debug,warn`), one line per
//! record on stderr with a UTC timestamp.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

struct Logger {
    default: LevelFilter,
    modules: Vec<(String, LevelFilter)>,
}

impl Logger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.modules
            .iter()
            .filter(|(m, _)| {
                target
                    .strip_prefix(m.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .max_by_key(|(m, _)| m.len())
            .map_or(self.default, |(_, l)| *l)
    }
}

impl Log for Logger {
    fn enabled(&self, meta: &Metadata) -> bool {
        meta.level() <= self.level_for(meta.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs();
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let line = format!(
            "{h:02}:{m:02}:{s:02}.{:03}Z {:5} {}: {}\n",
            now.subsec_millis(),
            record.level(),
            record.target(),
            record.args()
        );
        // A failed write to stderr has nowhere better to go.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Parses a filter such as `info` or `sio_edge=debug,warn`.
///
/// # Errors
/// A message naming the part that is not a level.
fn parse(filter: &str) -> Result<Logger, String> {
    let mut logger = Logger {
        default: LevelFilter::Info,
        modules: Vec::new(),
    };
    for part in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((module, level)) => {
                let level = level
                    .parse()
                    .map_err(|_| format!("log level {level:?} in {filter:?}"))?;
                logger.modules.push((module.trim().to_owned(), level));
            }
            None => match part.parse() {
                Ok(level) => logger.default = level,
                // A bare module name means "everything from it".
                Err(_) => logger.modules.push((part.to_owned(), LevelFilter::Trace)),
            },
        }
    }
    Ok(logger)
}

/// Installs the logger for the process. Calling it twice keeps the first.
///
/// # Errors
/// A bad filter string.
pub fn init(filter: &str) -> Result<(), String> {
    let logger = parse(filter)?;
    let max = logger
        .modules
        .iter()
        .map(|(_, l)| *l)
        .chain([logger.default])
        .max()
        .unwrap_or(LevelFilter::Info);
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_filters_pick_the_longest_match() {
        let l = parse("warn,sio_edge=debug,sio_edge::server=trace").unwrap();
        assert_eq!(l.level_for("other"), LevelFilter::Warn);
        assert_eq!(l.level_for("sio_edge::auth"), LevelFilter::Debug);
        assert_eq!(l.level_for("sio_edge::server::conn"), LevelFilter::Trace);
        assert!(parse("sio_edge=loud").is_err());
    }
}
