// Package lds reads the files of a passport chip's logical data structure
// (ICAO 9303 part 10) other than the face (templates/facerecord reads
// DG2): EF.COM (ParseCOM), the MRZ in DG1 (ParseDG1, every check digit
// verified), the fingerprints in DG3 (ParseDG3, ISO/IEC 19794-4:2005
// finger image records), the irises in DG4 (ParseDG4, ISO/IEC
// 19794-6:2005) and bare iris records (ParseIrisRecord, 19794-6:2005 and
// 2011), the security infos of DG14 and the active authentication key of
// DG15 (ParseDG14, ParseDG15: structure only), and EF.SOD (ParseSOD).
//
// The reader is pure Go. It works by hand on the BER-TLV structure
// (templates/internal/ber, shared with facerecord) and reads the SOD's
// CMS SignedData, which is plain DER, with encoding/asn1. Every length is
// checked against its container before it is used, so a length never
// makes it allocate more than the input, and every error is an *Error
// naming the input, the byte offset and the tag or field at fault.
// Bytes after a file's element (padding of a file read from a chip) are
// ignored.
//
// Finger and iris images are checked against their declared format and
// their size read from their own headers; Decode methods decode WSQ
// (capture/wsq), JPEG, PNG and raw pixels. JPEG 2000 is not decoded here
// (ErrNeedsJPEG2000): templates/face decodes it through OpenCV, which
// this package does not link.
//
// Passive authentication is not done here: SOD.CheckHash compares a data
// group's hash with the SOD's, but the SOD's signature and the document
// signer certificate's chain to the issuing state's CSCA (master lists,
// CRLs) are not verified. The gate controller does passive
// authentication; this package lets a test or a tool check hashes.
package lds
