//! Content fingerprints of a whole input (a file, a command's output): a 128-bit XXH3 over every
//! byte, so that an unchanged input can be recognised without parsing it again, and a change
//! anywhere in it (one byte in the middle, with the same size and modification time) cannot.

use std::io::{Read, Seek};

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// The fingerprint of an input's bytes. Not cryptographic: it tells this agent's own inputs
/// apart from their earlier versions, where a collision (2^-128) is out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentFingerprint(pub u128);

impl ContentFingerprint {
    /// The fingerprint of bytes in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(xxh3_128(bytes))
    }

    /// The fingerprint of a file's whole content from where it stands, read in 64 KiB blocks;
    /// the file is rewound to its start afterwards.
    pub fn of_file(file: &mut std::fs::File) -> std::io::Result<Self> {
        let mut hasher = Xxh3::new();
        let mut block = [0u8; 1 << 16];
        loop {
            match file.read(&mut block) {
                Ok(0) => break,
                Ok(n) => hasher.update(&block[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        file.rewind()?;
        Ok(Self(hasher.digest128()))
    }

    /// As stored: 32 hexadecimal digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Read back from [`Self::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        (text.len() == 32)
            .then(|| u128::from_str_radix(text, 16).ok())
            .flatten()
            .map(Self)
    }
}

/// A reader that fingerprints exactly the bytes read through it: what is parsed is what is
/// fingerprinted, even if the file changes while it is read.
pub(crate) struct Fingerprinting<R> {
    inner: R,
    hasher: Xxh3,
}

impl<R: Read> Fingerprinting<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Xxh3::new(),
        }
    }

    /// The fingerprint of everything read so far.
    pub fn fingerprint(&self) -> ContentFingerprint {
        ContentFingerprint(self.hasher.digest128())
    }
}

impl<R: Read> Read for Fingerprinting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn one_byte_anywhere_changes_the_fingerprint_and_streams_agree_with_memory() {
        let mut text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{{\"id\":\"r{i}\"}}\n").into_bytes())
            .collect();
        let whole = ContentFingerprint::of_bytes(&text);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&text).unwrap();
        file.rewind().unwrap();
        assert_eq!(ContentFingerprint::of_file(&mut file).unwrap(), whole);
        let mut streamed = Fingerprinting::new(&mut file);
        std::io::copy(&mut streamed, &mut std::io::sink()).unwrap();
        assert_eq!(streamed.fingerprint(), whole, "of_file rewound the file");
        let middle = text.len() / 2;
        text[middle] ^= 1;
        assert_ne!(ContentFingerprint::of_bytes(&text), whole);
        assert_eq!(ContentFingerprint::from_hex(&whole.to_hex()), Some(whole));
        assert_eq!(ContentFingerprint::from_hex("xyz"), None);
    }
}
