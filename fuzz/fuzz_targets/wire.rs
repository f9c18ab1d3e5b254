#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ipsecgw_fuzz::wire(data);
});
