#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ipsecgw_fuzz::ctl_wire(data);
});
