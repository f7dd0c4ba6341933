//! The command parser and its policy, on any command type and argv.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, Vec<String>)| {
    let (command_type, args) = input;
    let _ = kubeline_shared::command::parse(&command_type, &args);
    // The same argv under every real command type, so the flag scanner sees it all.
    for ct in kubeline_shared::command::SUPPORTED_COMMANDS {
        let _ = kubeline_shared::command::parse(ct, &args);
    }
});
