package wsq

// The WSQ decomposition (spec Figure 2 and its "W-tree"/"Q-tree" tables).
// Twenty 2-D wavelet splits ("nodes") cut the image into 64 subbands. Node 0
// is the whole image; every other node is one quadrant of an earlier node,
// and its own split leaves its four quadrants in place. A quadrant is the
// output of the lowpass (L) or highpass (H) filter horizontally, then
// vertically: top-left LL, top-right HL, bottom-left LH, bottom-right HH.
//
// A split of n samples gives the lowpass band ceil(n/2) samples and the
// highpass band floor(n/2). Highpass filtering then subsampling mirrors a
// band's spectrum, so a node that is a highpass band in some direction stores
// its own split in that direction mirrored: high band first (the spec's
// "inverted" rows or columns).
const (
	numNodes    = 20
	numSubbands = 64 // subbands in the spec's numbering (and in DQT)
	numCoded    = 60 // subbands 60–63 (HH of node 0) are never transmitted
)

// Quadrants of a node's split.
const (
	quadLL = iota // top left
	quadHL        // top right: highpass horizontally
	quadLH        // bottom left: highpass vertically
	quadHH        // bottom right
)

type rect struct{ x, y, w, h int }

type node struct {
	rect
	invRows bool // its horizontal split stores the high band first
	invCols bool // its vertical split stores the high band first
}

// quadrant returns quadrant q of n's split.
func (n node) quadrant(q int) node {
	wl := n.w - n.w/2 // width of the left part: the lowpass band…
	if n.invRows {
		wl = n.w / 2 // …or the highpass band
	}
	ht := n.h - n.h/2
	if n.invCols {
		ht = n.h / 2
	}
	r := rect{n.x, n.y, wl, ht}
	if q == quadHL || q == quadHH {
		r.x, r.w = n.x+wl, n.w-wl
	}
	if q == quadLH || q == quadHH {
		r.y, r.h = n.y+ht, n.h-ht
	}
	return node{rect: r, invRows: q == quadHL || q == quadHH, invCols: q == quadLH || q == quadHH}
}

// nodeParent[i] is the node and quadrant that node i splits (node 0: the
// image). Parents come before their children.
var nodeParent = [numNodes]struct{ node, quad int }{
	{-1, 0},
	{0, quadLL}, {0, quadHL}, {0, quadLH},
	{1, quadHL}, {1, quadLH},
	{4, quadLL}, {4, quadHL}, {4, quadLH}, {4, quadHH},
	{5, quadLL}, {5, quadHL}, {5, quadLH}, {5, quadHH},
	{1, quadLL},
	{14, quadLL}, {14, quadHL}, {14, quadLH}, {14, quadHH},
	{15, quadLL},
}

// subbandAt[k] is the node and quadrant that hold subband k, in the order
// the blocks carry them (block 1: 0–18, block 2: 19–51, block 3: 52–59).
var subbandAt = func() (s [numCoded]struct{ node, quad int }) {
	k := 0
	add := func(node int, quads ...int) {
		for _, q := range quads {
			s[k].node, s[k].quad = node, q
			k++
		}
	}
	all := []int{quadLL, quadHL, quadLH, quadHH}
	add(19, all...)
	add(15, quadHL, quadLH, quadHH) // its LL is node 19
	for n := 16; n <= 18; n++ {
		add(n, all...)
	}
	for n := 6; n <= 13; n++ {
		add(n, all...)
	}
	add(1, quadHH) // its other quadrants are nodes 14, 4 and 5
	add(2, all...)
	add(3, all...)
	return s
}()

// trees holds the nodes and subband rectangles of one image size.
type trees struct {
	nodes [numNodes]node
	sub   [numCoded]rect
}

func buildTrees(width, height int) trees {
	var t trees
	t.nodes[0] = node{rect: rect{0, 0, width, height}}
	for i := 1; i < numNodes; i++ {
		p := nodeParent[i]
		t.nodes[i] = t.nodes[p.node].quadrant(p.quad)
	}
	for k, s := range subbandAt {
		t.sub[k] = t.nodes[s.node].quadrant(s.quad).rect
	}
	return t
}
