package finger

// Neighbour offsets clockwise from north: N, NE, E, SE, S, SW, W, NW.
var ndx = [8]int{0, 1, 1, 1, 0, -1, -1, -1}
var ndy = [8]int{-1, -1, 0, 1, 1, 1, 0, -1}

// thin reduces the ridge map to a one-pixel-wide, 8-connected skeleton:
// Zhang–Suen (1984) followed by a pass that removes the corner pixels it
// leaves on diagonal runs, which would otherwise read as bifurcations.
func thin(ridge []bool, w, h int) []uint8 {
	s := make([]uint8, w*h)
	var cand []int
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			if ridge[y*w+x] {
				s[y*w+x] = 1
				cand = append(cand, y*w+x)
			}
		}
	}
	off := [8]int{}
	for k := range 8 {
		off[k] = ndy[k]*w + ndx[k]
	}
	var del []int
	for {
		changed := false
		for sub := range 2 {
			del = del[:0]
			live := cand[:0]
			for _, i := range cand {
				if s[i] == 0 {
					continue
				}
				live = append(live, i)
				var nb [8]uint8
				cnt := 0
				for k := range 8 {
					nb[k] = s[i+off[k]]
					cnt += int(nb[k])
				}
				if cnt < 2 || cnt > 6 {
					continue
				}
				trans := 0
				for k := range 8 {
					if nb[k] == 0 && nb[(k+1)%8] == 1 {
						trans++
					}
				}
				if trans != 1 {
					continue
				}
				// P2=N, P4=E, P6=S, P8=W.
				N, E, S, W := nb[0], nb[2], nb[4], nb[6]
				if sub == 0 {
					if N*E*S != 0 || E*S*W != 0 {
						continue
					}
				} else {
					if N*E*W != 0 || N*S*W != 0 {
						continue
					}
				}
				del = append(del, i)
			}
			cand = live
			for _, i := range del {
				s[i] = 0
			}
			if len(del) > 0 {
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	// Remove corner pixels of staircases: a pixel with two 4-neighbours at a
	// right angle whose removal keeps its neighbours connected.
	for _, i := range cand {
		if s[i] == 0 {
			continue
		}
		var nb [8]uint8
		cnt := 0
		for k := range 8 {
			nb[k] = s[i+off[k]]
			cnt += int(nb[k])
		}
		if cnt < 2 {
			continue
		}
		corner := (nb[0] == 1 && nb[2] == 1) || (nb[2] == 1 && nb[4] == 1) ||
			(nb[4] == 1 && nb[6] == 1) || (nb[6] == 1 && nb[0] == 1)
		if corner && neighbourComponents(nb) == 1 {
			s[i] = 0
		}
	}
	return s
}

// neighbourComponents counts the 8-connected groups among the set
// neighbours of a pixel (excluding the pixel itself).
func neighbourComponents(nb [8]uint8) int {
	var seen [8]bool
	comps := 0
	for k := range 8 {
		if nb[k] == 0 || seen[k] {
			continue
		}
		comps++
		var stack [8]int
		stack[0] = k
		sp := 1
		seen[k] = true
		for sp > 0 {
			sp--
			a := stack[sp]
			for b := range 8 {
				if nb[b] == 0 || seen[b] {
					continue
				}
				dx := ndx[a] - ndx[b]
				dy := ndy[a] - ndy[b]
				if dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1 {
					seen[b] = true
					stack[sp] = b
					sp++
				}
			}
		}
	}
	return comps
}

// crossing is the Rutovitz crossing number of skeleton pixel i: 1 at an
// ending, 2 on a ridge, 3 or more at a bifurcation.
func crossing(s []uint8, w, i int) int {
	var nb [8]uint8
	for k := range 8 {
		nb[k] = s[i+ndy[k]*w+ndx[k]]
	}
	c := 0
	for k := range 8 {
		if nb[k] != nb[(k+1)%8] {
			c++
		}
	}
	return c / 2
}
