//! Fuzz target `edxml`: the edXML reader (`poros_edxml::read`) on arbitrary bytes, as an
//! agency's document-management software would hand them over.
//! Properties: never panics; the verdict is the same whichever sink takes the attachments; a
//! document the reader accepts starts as `sniff` says an edXML document does; a package or status
//! message that reads is written back (`write_package`, `write_status`) without refusal and
//! reads again to the same values (header, traces, business, attachments and their bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_edxml::{
    read, sniff, write_package, write_status, AttachmentSource, Collect, Discard, Message,
    Reference,
};

fuzz_target!(|data: &[u8]| {
    let discarded = read(data, &mut Discard);
    let mut sink = Collect::default();
    let collected = read(data, &mut sink);
    let message = match (discarded, collected) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the sink changed what was read");
            b
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!("the sink changed the verdict: {a:?} / {b:?}"),
    };
    assert!(
        sniff(data),
        "read accepted a document sniff does not recognise"
    );
    match message {
        Message::Package(p) => {
            let mut contents: Vec<&[u8]> = (0..p.attachments.len())
                .map(|i| sink.attachments.get(i).map_or(&[][..], |c| &c[..]))
                .collect();
            let mut sources: Vec<AttachmentSource<'_>> = p
                .attachments
                .iter()
                .zip(contents.iter_mut())
                .map(|(a, content)| AttachmentSource {
                    meta: a.meta.clone(),
                    content,
                })
                .collect();
            let mut out = Vec::new();
            write_package(
                &mut out,
                &p.header,
                &p.traces,
                p.business.as_ref(),
                &mut sources,
            )
            .expect("a package that was read is written");
            let mut again_sink = Collect::default();
            let Message::Package(again) =
                read(&out[..], &mut again_sink).expect("a written package reads")
            else {
                panic!("a written package read as a status message");
            };
            assert_eq!(again.header, p.header);
            assert_eq!(again.traces, p.traces);
            assert_eq!(again.business, p.business);
            assert_eq!(again.attachments, p.attachments);
            let metas: Vec<Reference> = p
                .attachments
                .iter()
                .map(|a| Reference::from(&a.meta))
                .collect();
            assert_eq!(again.manifest, metas);
            assert_eq!(again_sink.attachments, sink.attachments);
        }
        Message::Status(status) => {
            let mut out = Vec::new();
            write_status(&mut out, &status).expect("a status message that was read is written");
            let again = read(&out[..], &mut Discard).expect("a written status message reads");
            assert_eq!(again, Message::Status(status));
        }
    }
});
