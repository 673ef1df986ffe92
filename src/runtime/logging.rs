//! Where log lines go: stderr, and `--log-file` if given. On a terminal or in a file each
//! line starts with an RFC 3339 timestamp (date, time, UTC offset); when stderr is the
//! systemd journal (`JOURNAL_STREAM` names stderr's device and inode) each line instead
//! starts with its syslog priority as `<N>` (sd-daemon(3)) and carries no timestamp: the
//! journal keeps its own, and `journalctl -p warning` then finds the warnings.

use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;
use simplelog::{
    ColorChoice, CombinedLogger, Config, ConfigBuilder, SharedLogger, TermLogger, TerminalMode,
    WriteLogger,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--log-file`, reopened by path on SIGHUP: the logger writes through this handle.
pub struct LogFile {
    pub path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Let go of the current file and open `path` again (a rotated file is renamed away).
    pub fn reopen(&self) -> io::Result<()> {
        let f = Self::open(&self.path)?;
        *self.file.lock() = f;
        Ok(())
    }
}

/// The logger's writer: the current file of a [`LogFile`].
struct LogWriter(Arc<LogFile>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.file.lock().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.file.lock().flush()
    }
}

/// The syslog priority of a log level (sd-daemon(3): `<3>` error ... `<7>` debug).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether `JOURNAL_STREAM` ("DEVICE:INODE") names the file stderr is.
pub fn is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(js), Some((dev, ino))) = (journal_stream, stderr) else {
        return false;
    };
    let mut it = js.trim().split(':').map(|x| x.parse::<u64>().ok());
    matches!((it.next(), it.next(), it.next()), (Some(Some(d)), Some(Some(i)), None) if d == dev && i == ino)
}

/// Device and inode of stderr (fstat of a duplicate of fd 2).
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let m = File::from(fd).metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// Lines to the journal: `<N>message`, nothing else.
struct JournalLogger {
    level: LevelFilter,
    config: Config,
}

impl Log for JournalLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("<{}>{}\n", priority(r.level()), r.args());
            let _ = io::stderr().lock().write_all(line.as_bytes());
        }
    }
    fn flush(&self) {
        let _ = io::stderr().flush();
    }
}

impl SharedLogger for JournalLogger {
    fn level(&self) -> LevelFilter {
        self.level
    }
    fn config(&self) -> Option<&Config> {
        Some(&self.config)
    }
    fn as_log(self: Box<Self>) -> Box<dyn Log> {
        Box::new(*self)
    }
}

/// Change the log level while running (a reload): the loggers pass everything and this
/// global filter decides.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Set up the loggers at `level`; returns the log file's handle, for SIGHUP.
pub fn init(level: LevelFilter, log_file: Option<&Path>) -> Result<Option<Arc<LogFile>>, String> {
    let (wanted, level) = (level, LevelFilter::Trace);
    let mut b = ConfigBuilder::new();
    b.set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_time_format_rfc3339();
    // Still one thread here, so the local offset can be read; UTC if not.
    let _ = b.set_time_offset_to_local();
    let lc = b.build();
    let journal = is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr_id());
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![if journal {
        Box::new(JournalLogger {
            level,
            config: lc.clone(),
        })
    } else {
        TermLogger::new(level, lc.clone(), TerminalMode::Stderr, ColorChoice::Never)
    }];
    let mut handle = None;
    if let Some(p) = log_file {
        let file = LogFile::open(p).map_err(|e| format!("--log-file {}: {e}", p.display()))?;
        let f = Arc::new(LogFile {
            path: p.to_path_buf(),
            file: Mutex::new(file),
        });
        loggers.push(WriteLogger::new(level, lc, LogWriter(f.clone())));
        handle = Some(f);
    }
    CombinedLogger::init(loggers).map_err(|e| e.to_string())?;
    set_level(wanted);
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr_exactly() {
        assert!(is_journal(Some("8:12345"), Some((8, 12345))));
        assert!(is_journal(Some("8:12345\n"), Some((8, 12345))));
        assert!(
            !is_journal(Some("8:12346"), Some((8, 12345))),
            "other inode"
        );
        assert!(
            !is_journal(Some("9:12345"), Some((8, 12345))),
            "other device"
        );
        assert!(!is_journal(Some("8:12345:1"), Some((8, 12345))));
        assert!(!is_journal(Some("8"), Some((8, 12345))));
        assert!(!is_journal(Some(""), Some((8, 12345))));
        assert!(!is_journal(None, Some((8, 12345))));
        assert!(!is_journal(Some("8:12345"), None));
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
        assert_eq!(priority(Level::Trace), 7);
    }
}
