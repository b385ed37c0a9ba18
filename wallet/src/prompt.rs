//! Secrets from people: passphrases and mnemonic words, read from a file (for scripts) or
//! typed at the terminal with echo off, and the show-then-retype confirmation of new words.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use bip39::Mnemonic;
use zeroize::Zeroizing;

use crate::hd;

/// True when a person can both read what is printed and type an answer.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The first line of `file` (without its line ending); `what` names it in errors.
pub fn first_line(file: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {what} file {}", file.display()))?,
    );
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    if line.is_empty() {
        bail!("{what} file {} is empty", file.display());
    }
    Ok(line)
}

/// A secret typed at the terminal with echo off; asked twice when `confirm`. `hint` says
/// which flag reads it from a file instead.
pub fn ask_secret(prompt: &str, confirm: bool, hint: &str) -> anyhow::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        bail!("this needs the {prompt}: run in a terminal or pass {hint}");
    }
    let first = Zeroizing::new(rpassword::prompt_password(format!("{prompt}: "))?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password(format!("Repeat {prompt}: "))?);
        if again != first {
            bail!("the two entries of the {prompt} do not match");
        }
    }
    if first.is_empty() {
        bail!("the {prompt} must not be empty");
    }
    Ok(first)
}

/// Mnemonic words from `file` (whitespace-separated, any lines), or typed at the terminal.
pub fn mnemonic_words(file: Option<&Path>) -> anyhow::Result<Mnemonic> {
    let text = match file {
        Some(f) => Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read mnemonic file {}", f.display()))?,
        ),
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("restore needs the mnemonic words: type them in a terminal, or pass --mnemonic-file FILE");
            }
            Zeroizing::new(rpassword::prompt_password(
                "Mnemonic words, separated by spaces (not shown): ",
            )?)
        }
    };
    let mnemonic = hd::parse_mnemonic(&text).map_err(|e| match file {
        Some(f) => anyhow::anyhow!("mnemonic file {}: {e}; nothing was written", f.display()),
        None => anyhow::anyhow!("{e}; nothing was written"),
    })?;
    Ok(mnemonic)
}

/// Shows new words once, waits until they are written down, clears the screen and asks for
/// them back (three tries). Fails, so that nothing is written, if they never match.
pub fn show_and_confirm(mnemonic: &Mnemonic) -> anyhow::Result<()> {
    let words: Vec<&str> = mnemonic.words().collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Write down these {} words, in order. They are the wallet's only backup: anyone who has \
         them can spend its coins, and without them a lost wallet file is lost for good.\n",
        words.len()
    )?;
    for (i, w) in words.iter().enumerate() {
        writeln!(out, "{:>4}. {w}", i + 1)?;
    }
    write!(out, "\nPress Enter once they are written down. ")?;
    out.flush()?;
    drop(out);
    let mut enter = String::new();
    std::io::stdin().lock().read_line(&mut enter)?;
    // Clear the screen and its scrollback, so the words are not left on it.
    print!("\x1b[3J\x1b[2J\x1b[H");
    std::io::stdout().flush()?;
    for _ in 0..3 {
        let typed = Zeroizing::new(rpassword::prompt_password(
            "Type the words to confirm your copy (not shown): ",
        )?);
        match hd::parse_mnemonic(&typed) {
            Ok(m) if m == *mnemonic => return Ok(()),
            Ok(m) if m.word_count() != words.len() => eprintln!(
                "those are {} words; {} were shown",
                m.word_count(),
                words.len()
            ),
            Ok(m) => {
                let wrong = m
                    .words()
                    .zip(mnemonic.words())
                    .position(|(a, b)| a != b)
                    .map_or(0, |i| i + 1);
                eprintln!("those are not the words shown: word {wrong} differs");
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    bail!("the words were not confirmed, so no wallet was written; run create again for new words")
}
