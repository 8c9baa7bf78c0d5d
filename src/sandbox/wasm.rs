//! A plugin's bytes with their SHA-256, computed once when the file is
//! read: the plugin's version and its code cache entry both come from it,
//! so a large plugin (tens of MB) is hashed once per load, not once per use.

use std::ops::Deref;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The bytes of a `.wasm` file and their digest. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Wasm {
    bytes: Arc<Vec<u8>>,
    sha256: [u8; 32],
}

impl Wasm {
    /// Hashes `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Self { bytes: Arc::new(bytes), sha256 }
    }

    /// The SHA-256 of the bytes, in hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The plugin version these bytes are: the first 12 hex digits of their SHA-256.
    pub fn version(&self) -> String {
        hex::encode(&self.sha256[..6])
    }

    /// The bytes, shared.
    pub fn shared(&self) -> Arc<Vec<u8>> {
        self.bytes.clone()
    }
}

impl Deref for Wasm {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_start_of_the_digest() {
        let wasm = Wasm::new(b"\0asm\x01\0\0\0".to_vec());
        assert_eq!(wasm.sha256_hex(), hex::encode(Sha256::digest(b"\0asm\x01\0\0\0")));
        assert_eq!(wasm.version(), wasm.sha256_hex()[..12]);
        assert_eq!(&wasm[..4], b"\0asm");
    }
}
