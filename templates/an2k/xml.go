package an2k

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// The XML encoding (ANSI/NIST-ITL 2-2008, NIEM): ParseXML reads a
// package's structure — its records, their types and IDCs, the Type-1
// fields a receiver routes on, and each image with its size, compression
// and positions — into the same Transaction the traditional encoding
// gives, so Transaction.Image and Image.Decode work on both. It does not
// map every element of the schema to its field number: Type-2's
// domain-defined content and the minutiae are left out (an exchange
// partner sending XML sends it for images), and Encode writes the
// traditional encoding only.

// xmlNode is an element with its text and children, namespaces dropped
// (the names are unique within the ITL and NIEM vocabularies used).
type xmlNode struct {
	XMLName xml.Name
	Text    string    `xml:",chardata"`
	Nodes   []xmlNode `xml:",any"`
}

// find returns the first descendant reached by the path of local names.
func (n *xmlNode) find(path ...string) *xmlNode {
	if len(path) == 0 {
		return n
	}
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == path[0] {
			if m := n.Nodes[i].find(path[1:]...); m != nil {
				return m
			}
		}
	}
	return nil
}

// holder returns the first element at any depth with a child of that
// local name (an image element holding its BinaryBase64Object).
func (n *xmlNode) holder(child string) *xmlNode {
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == child {
			return n
		}
	}
	for i := range n.Nodes {
		if m := n.Nodes[i].holder(child); m != nil {
			return m
		}
	}
	return nil
}

func (n *xmlNode) text(path ...string) string {
	if m := n.find(path...); m != nil {
		return strings.TrimSpace(m.Text)
	}
	return ""
}

// xmlType1 maps Type-1 fields to their element paths.
var xmlType1 = []struct {
	num  int
	path []string
}{
	{fTOT, []string{"TransactionCategoryCode"}},
	{fDAT, []string{"TransactionDate", "Date"}},
	{fPRY, []string{"TransactionPriorityValue"}},
	{fDAI, []string{"TransactionDestinationOrganization", "OrganizationIdentification", "IdentificationID"}},
	{fORI, []string{"TransactionOriginatingOrganization", "OrganizationIdentification", "IdentificationID"}},
	{fTCN, []string{"TransactionControlIdentification", "IdentificationID"}},
	{fTCR, []string{"TransactionControlReferenceIdentification", "IdentificationID"}},
	{fNSR, []string{"TransactionImageResolutionDetails", "NativeScanningResolutionValue"}},
	{fNTR, []string{"TransactionImageResolutionDetails", "NominalTransmittingResolutionValue"}},
}

// ParseXML reads an ANSI/NIST-ITL package in the XML encoding. The
// records must be those the package's content summary lists, in its order
// and with its IDCs, as Parse checks CNT; a record's image must be valid
// base64. Errors are *Error values whose Offset is -1 (XML has no byte
// offsets a reader can act on): they name the record and the element.
func ParseXML(b []byte) (*Transaction, error) {
	var root xmlNode
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, &Error{Offset: -1, Record: -1, Err: ErrFormat, Detail: "XML: " + err.Error()}
	}
	if root.XMLName.Local != "NISTBiometricInformationExchangePackage" {
		return nil, &Error{Offset: -1, Record: -1, Err: ErrFormat, Detail: fmt.Sprintf("XML root is <%s>, want <NISTBiometricInformationExchangePackage>", root.XMLName.Local)}
	}
	t := &Transaction{}
	var summary []*xmlNode
	for i := range root.Nodes {
		n := &root.Nodes[i]
		idx := len(t.Records)
		fail := func(kind error, format string, args ...any) error {
			return &Error{Offset: -1, Record: idx, Err: kind, Detail: fmt.Sprintf("<%s>: ", n.XMLName.Local) + fmt.Sprintf(format, args...)}
		}
		typ, err := strconv.Atoi(n.text("RecordCategoryCode"))
		if err != nil || typ < 1 || typ > 99 {
			return nil, fail(ErrFormat, "RecordCategoryCode %q is not a record type", n.text("RecordCategoryCode"))
		}
		r := Record{Type: typ}
		if typ == 1 {
			if idx != 0 {
				return nil, fail(ErrFormat, "a second Type-1 record")
			}
			tx := n.find("Transaction")
			if tx == nil {
				return nil, fail(ErrFormat, "no <Transaction>")
			}
			r.Set(Field{Num: fVER, Value: []byte(tx.text("TransactionMajorVersionValue") + tx.text("TransactionMinorVersionValue"))})
			for _, m := range xmlType1 {
				if v := tx.text(m.path...); v != "" {
					if m.num == fDAT {
						v = strings.ReplaceAll(v, "-", "")
					}
					r.Set(Field{Num: m.num, Value: []byte(v)})
				}
			}
			if d := tx.find("TransactionDomain"); d != nil {
				r.Set(TextField(fDOM, []string{d.text("OrganizationName"), d.text("DomainVersionNumberIdentification", "IdentificationID")}))
			}
			if cs := tx.find("TransactionContentSummary"); cs != nil {
				for j := range cs.Nodes {
					if cs.Nodes[j].XMLName.Local == "ContentRecordSummary" {
						summary = append(summary, &cs.Nodes[j])
					}
				}
			}
			t.Records = append(t.Records, r)
			continue
		}
		if idx == 0 {
			return nil, fail(ErrFormat, "the first record is Type-%d, not Type-1", typ)
		}
		idc := n.text("ImageReferenceIdentification", "IdentificationID")
		if _, err := strconv.Atoi(idc); err != nil {
			return nil, fail(ErrFormat, "ImageReferenceIdentification %q is not a number", idc)
		}
		r.Set(Field{Num: 2, Value: []byte(idc)})
		if err := xmlImage(&r, n); err != nil {
			return nil, fail(ErrValue, "%v", err)
		}
		t.Records = append(t.Records, r)
	}
	if len(t.Records) == 0 {
		return nil, &Error{Offset: -1, Record: -1, Err: ErrFormat, Detail: "XML package without records"}
	}
	// The content summary is CNT: the records after Type-1, in order.
	if len(summary) != len(t.Records)-1 {
		return nil, &Error{Offset: -1, Record: 0, Type: 1, Field: fCNT, Err: ErrCount,
			Detail: fmt.Sprintf("the content summary lists %d records, the package holds %d", len(summary), len(t.Records)-1)}
	}
	cnt := [][]string{{"1", strconv.Itoa(len(summary))}}
	for i, s := range summary {
		r := &t.Records[i+1]
		typ, _ := strconv.Atoi(s.text("RecordCategoryCode"))
		idc, _ := r.IDC()
		sidc, err := strconv.Atoi(s.text("ImageReferenceIdentification", "IdentificationID"))
		if typ != r.Type || err != nil || sidc != idc {
			return nil, &Error{Offset: -1, Record: i + 1, Type: r.Type, Field: fCNT, Err: ErrCount,
				Detail: fmt.Sprintf("the content summary lists Type-%d IDC %s here, the package holds Type-%d IDC %d",
					typ, s.text("ImageReferenceIdentification", "IdentificationID"), r.Type, idc)}
		}
		cnt = append(cnt, []string{strconv.Itoa(typ), strconv.Itoa(idc)})
	}
	t.Records[0].Set(TextField(fCNT, cnt...))
	return t, nil
}

// xmlImage sets an image record's fields from its image element: the data
// (999, or 9 for the binary Types 3–8, as Image reads them), size,
// compression and positions.
func xmlImage(r *Record, n *xmlNode) error {
	parent := n.holder("BinaryBase64Object")
	if parent == nil {
		return nil
	}
	data := parent.find("BinaryBase64Object")
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data.Text), ""))
	if err != nil {
		return fmt.Errorf("BinaryBase64Object: %w", err)
	}
	dataField := 999
	if r.Type >= 3 && r.Type <= 8 {
		dataField = 9
	}
	r.Set(Field{Num: dataField, Value: raw})
	for num, name := range map[int]string{6: "ImageHorizontalLineLengthPixelQuantity", 7: "ImageVerticalLineLengthPixelQuantity"} {
		if v := parent.text(name); v != "" {
			r.Set(Field{Num: num, Value: []byte(v)})
		}
	}
	switch {
	case r.Type >= 3 && r.Type <= 8:
		if v := parent.text("ImageCompressionAlgorithmCode"); v != "" {
			r.Set(Field{Num: 8, Value: []byte(v)})
		}
	default:
		if v := parent.text("ImageCompressionAlgorithmText"); v != "" {
			r.Set(Field{Num: 11, Value: []byte(v)})
		}
	}
	var fgp [][]string
	if pos := parent.find("FingerprintImagePosition"); pos != nil {
		for _, p := range pos.Nodes {
			if p.XMLName.Local == "FingerPositionCode" {
				fgp = append(fgp, []string{strings.TrimSpace(p.Text)})
			}
		}
	}
	if len(fgp) > 0 {
		num := 13
		if r.Type >= 3 && r.Type <= 8 {
			num = 4
		}
		r.Set(TextField(num, fgp...))
	}
	return nil
}

// IsXML reports whether b looks like the XML encoding rather than the
// traditional one (which starts with "1.").
func IsXML(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n\ufeff")
	return bytes.HasPrefix(b, []byte("<"))
}

// ParseAny reads either encoding: ParseXML for XML, else Parse.
func ParseAny(b []byte) (*Transaction, error) {
	if IsXML(b) {
		return ParseXML(b)
	}
	return Parse(b)
}
