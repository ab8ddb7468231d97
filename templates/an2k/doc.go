// Package an2k reads and writes ANSI/NIST-ITL 1-2011 (Update 2015)
// transactions in the traditional encoding: the tenprint, latent, face
// and minutiae files that INTERPOL (INT-I), the FBI (EBTS) and Prüm
// partners exchange.
//
// Parse reads a whole transaction, driven by the Type-1 record's CNT, into
// records of fields: tagged records of any type (2, 9, 10, 13–17, 98, 99
// and whatever else CNT announces), Type-4's fixed binary header as
// fields, and the other binary types (3, 5, 6, 7, 8) as raw bytes. Older
// files back to ANSI/NIST-CSL 1-1993 read the same (field tags are read as
// numbers, so "1.01:" is 1.001), and record types are not checked against
// VER: NBIS's test files put Types 13–17 in "0201" transactions. Every
// error is an *Error naming the record, the field and the byte offset.
//
// Transaction.Image gives a record's image with its compression, size,
// resolution and positions, and Image.Decode decodes it in pure Go
// (uncompressed, WSQ through capture/wsq, JPEG, PNG). JPEG 2000 is
// returned undecoded with ErrNeedsJPEG2000: decoding it needs OpenCV,
// which this package must not link (see engine's layering test);
// templates/face decodes it. Transaction.Minutiae converts a Type-9's
// INCITS 378 block to a minutiae.Record; LegacyMinutiae reads the legacy
// NIST standard format (9.010, 9.012) as written, in 0.01 mm.
//
// Encode writes a transaction back (LEN and, when needed, CNT computed;
// 3-digit field numbers), so Parse → Encode → Parse gives Equal records.
// NewTransaction, Add and the Add* helpers build one: Type-14 and Type-4
// fingerprints, a Type-10 face, Type-9 minutiae, and a Type-2 from a
// domain Profile, whose field table is data (profiles/*.json) so the same
// code writes INT-I and EBTS descriptive text and reads a subject's
// attributes back with Profile.Subject.
//
// ParseXML reads the XML encoding (ANSI/NIST-ITL 2-2008, NIEM) into the
// same records — their types, IDCs, the Type-1 routing fields and the
// images with their size, compression and positions — and ParseAny takes
// either encoding; other XML elements are not mapped, and Encode writes
// the traditional encoding only.
//
// Out of scope: the rest of the XML encoding's elements, validation
// of each record type's mandatory fields and value ranges, legacy minutiae
// in image pixels (that needs the image record's size and resolution) and
// their ridge counts, EFS (9.300+) as features (read and written as
// fields), Type-98 hashing and signing, facsimile (Type-6 BCA 1), lossless
// JPEG and Type-7/8 images.
package an2k
