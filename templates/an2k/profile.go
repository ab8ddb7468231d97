package an2k

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Profile is an implementation domain (1.013 DOM) as data: what its
// Type-1 says, its transaction types and its Type-2 field table. The
// tables are the embedded files profiles/*.json; each says what it is
// based on in Basis.
type Profile struct {
	// Name is the name LoadProfile takes ("int-i", "ebts").
	Name  string `json:"name"`
	Basis string `json:"basis"`
	// Version is the 1.002 VER NewTransaction writes.
	Version string `json:"version"`
	// Domain is 1.013 DOM's name and version.
	Domain struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"domain"`
	TOTs   []TOT        `json:"tots"`
	Fields []Type2Field `json:"type2"`
}

// TOT is a type of transaction (1.004) of a domain.
type TOT struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Type2Field is one field of a domain's Type-2 record.
type Type2Field struct {
	Num       int    `json:"field"`
	Mnemonic  string `json:"mnemonic"`
	Name      string `json:"name"`
	Mandatory bool   `json:"mandatory"`
	// MaxLen is the longest value in characters; 0: no limit.
	MaxLen int `json:"max_length"`
	// Attribute is the subject attribute the field holds ("name",
	// "date_of_birth"...), the key of Type2's and Subject's maps.
	Attribute string `json:"attribute"`
	// Default is written when the caller gives no value ("" for none).
	Default string `json:"default,omitempty"`
}

//go:embed profiles/*.json
var profileFiles embed.FS

// Profiles lists the names LoadProfile knows.
func Profiles() []string {
	ents, _ := profileFiles.ReadDir("profiles")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(out)
	return out
}

// LoadProfile returns the embedded profile with the name (case
// insensitive); an unknown name is an error listing the known ones.
func LoadProfile(name string) (*Profile, error) {
	name = strings.ToLower(name)
	if !slices.Contains(Profiles(), name) {
		return nil, fmt.Errorf("%w: unknown profile %q (known: %s)", ErrValue, name, strings.Join(Profiles(), ", "))
	}
	b, err := profileFiles.ReadFile(path.Join("profiles", name+".json"))
	if err != nil {
		return nil, err
	}
	p := &Profile{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("an2k: profile %s: %w", name, err)
	}
	return p, nil
}

// Type2 makes the domain's Type-2 record from a subject's attributes
// (keys as in the profile's Attribute column), without its IDC, which
// Transaction.Add gives. Unknown attributes, missing mandatory fields,
// values over their field's length and values holding GS or FS are errors
// wrapping ErrValue.
func (p *Profile) Type2(attrs map[string]string) (Record, error) {
	known := map[string]bool{}
	for _, f := range p.Fields {
		known[f.Attribute] = true
	}
	var unknown []string
	for k := range attrs {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Record{}, &Error{Offset: -1, Record: -1, Type: 2, Err: ErrValue,
			Detail: fmt.Sprintf("profile %s has no attribute %s", p.Name, strings.Join(unknown, ", "))}
	}
	r := Record{Type: 2}
	for _, f := range p.Fields {
		v, ok := attrs[f.Attribute]
		if !ok || v == "" {
			v = f.Default
		}
		if v == "" {
			if f.Mandatory {
				return Record{}, p.fieldErr(f, "mandatory %s (%q) missing", f.Mnemonic, f.Attribute)
			}
			continue
		}
		if f.MaxLen > 0 && utf8.RuneCountInString(v) > f.MaxLen {
			return Record{}, p.fieldErr(f, "%s is %d characters, at most %d", f.Mnemonic, utf8.RuneCountInString(v), f.MaxLen)
		}
		if strings.ContainsAny(v, "\x1c\x1d") {
			return Record{}, p.fieldErr(f, "%s holds a GS or FS separator", f.Mnemonic)
		}
		r.Set(Field{Num: f.Num, Value: []byte(v)})
	}
	return r, nil
}

func (p *Profile) fieldErr(f Type2Field, format string, args ...any) error {
	return &Error{Offset: -1, Record: -1, Type: 2, Field: f.Num, Err: ErrValue, Detail: "profile " + p.Name + ": " + fmt.Sprintf(format, args...)}
}

// Subject reads a Type-2 record back into attributes: every field of the
// profile's table the record has, by its Attribute.
func (p *Profile) Subject(r *Record) map[string]string {
	out := map[string]string{}
	for _, f := range p.Fields {
		if v, ok := r.Field(f.Num); ok {
			out[f.Attribute] = v.String()
		}
	}
	return out
}

// HasTOT reports whether the domain defines the transaction type.
func (p *Profile) HasTOT(code string) bool {
	return slices.ContainsFunc(p.TOTs, func(t TOT) bool { return t.Code == code })
}
