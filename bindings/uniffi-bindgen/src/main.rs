//! `cargo uniffi-bindgen generate --library <cdylib> --language <lang> --out-dir <dir>`
fn main() {
    uniffi::uniffi_bindgen_main()
}
