//! Four-letter words on the client port: a client sends four ASCII letters instead
//! of a ConnectRequest and gets plain text back, then the connection closes.
//!
//! Contract: [`detect`] recognises ZooKeeper's words at the very start of a
//! connection (their 4 bytes would otherwise read as an absurd frame length);
//! [`answer`] replies only to words in `4lw.commands.whitelist`, with ZooKeeper's
//! refusal text otherwise. Implemented: `ruok` (`imok`) and `srvr`/`stat`
//! (`Mode: standalone`); other whitelisted words say they are not implemented.

use super::connection::lock;
use super::Shared;

/// Every word Apache ZooKeeper knows (`FourLetterCommands`).
const KNOWN: [&str; 18] = [
    "ruok", "srvr", "stat", "conf", "cons", "crst", "dump", "envi", "srst", "wchs", "wchc", "wchp",
    "mntr", "isro", "gtmk", "stmk", "hash", "dirs",
];

/// The word at the front of `buf`, if it is one.
pub(crate) fn detect(buf: &[u8]) -> Option<&'static str> {
    let head = buf.get(..4)?;
    KNOWN.into_iter().find(|w| w.as_bytes() == head)
}

/// The text to send for `word`.
pub(crate) fn answer(word: &str, shared: &Shared) -> String {
    if !shared.config.allows_four_letter_word(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_owned(),
        "srvr" | "stat" => {
            let state = lock(&shared.state);
            format!(
                "Zookeeper version: ensemble-{}\n\
                 Connections: {}\n\
                 Outstanding: 0\n\
                 Zxid: 0x{:x}\n\
                 Mode: standalone\n\
                 Node count: {}\n",
                env!("CARGO_PKG_VERSION"),
                state.connection_count(),
                state.tree.last_zxid(),
                state.tree.node_count(),
            )
        }
        other => format!("{other} is not implemented by this server.\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_only_known_words_at_the_start() {
        assert_eq!(detect(b"ruok"), Some("ruok"));
        assert_eq!(detect(b"srvr\n"), Some("srvr"));
        assert_eq!(detect(b"ruo"), None);
        assert_eq!(detect(&[0, 0, 0, 44]), None);
    }
}
