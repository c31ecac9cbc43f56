package rules

import (
	"slices"
	"strings"
)

// litIndex finds which of many literals occur in a text in one pass (Aho-Corasick over
// bytes). Each literal carries the rank of the rule it stands for.
type litIndex struct {
	root  [256]int32 // the root's transitions (0: stay at the root)
	nodes []acNode
	edges []acEdge // each node's edges are nodes[i].edges, sorted by byte
	ranks []int32  // outputs: nodes[i].out is ranks[outLo:outHi]
}

type acNode struct {
	edgeLo, edgeHi int32
	fail           int32 // longest proper suffix that is a prefix of a literal
	dict           int32 // nearest node along the fail chain with outputs, or -1
	outLo, outHi   int32
}

type acEdge struct {
	b  byte
	to int32
}

// litEntry is one literal to index and the rule rank it stands for.
type litEntry struct {
	lit  string
	rank int32
}

// newLitIndex builds the automaton; it returns nil when there is nothing to index.
func newLitIndex(entries []litEntry) *litIndex {
	if len(entries) == 0 {
		return nil
	}
	// The trie, built from the literals in order: a literal shares with the one before it
	// the nodes of their common prefix, and the children of a node come in byte order.
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b litEntry) int { return strings.Compare(a.lit, b.lit) })
	size := 0 // trie nodes at most
	for _, e := range sorted {
		size += len(e.lit)
	}
	type edge struct {
		from int32
		acEdge
	}
	made := make([]edge, 0, size) // in the order the nodes were made
	outs := make([][]int32, 1, size+1)
	var path []int32 // path[i]: the node of the previous literal's first i+1 bytes
	prev := ""
	for _, e := range sorted {
		common := 0
		for common < len(prev) && common < len(e.lit) && prev[common] == e.lit[common] {
			common++
		}
		path = path[:common]
		s := int32(0)
		if common > 0 {
			s = path[common-1]
		}
		for i := common; i < len(e.lit); i++ {
			t := int32(len(outs))
			outs = append(outs, nil)
			made = append(made, edge{s, acEdge{e.lit[i], t}})
			path = append(path, t)
			s = t
		}
		prev = e.lit
		if l := outs[s]; len(l) == 0 || l[len(l)-1] != e.rank {
			outs[s] = append(l, e.rank)
		}
	}
	n := int32(len(outs))
	x := &litIndex{nodes: make([]acNode, n), edges: make([]acEdge, len(made))}
	// Each node's edges together, in byte order (the order they were made in).
	for _, e := range made {
		x.nodes[e.from].edgeHi++
	}
	at := int32(0)
	for i := range x.nodes {
		nd := &x.nodes[i]
		nd.edgeLo, at = at, at+nd.edgeHi
		nd.edgeHi = nd.edgeLo
	}
	for _, e := range made {
		nd := &x.nodes[e.from]
		x.edges[nd.edgeHi] = e.acEdge
		nd.edgeHi++
	}
	total := 0
	for i, o := range outs {
		slices.Sort(o)
		outs[i] = slices.Compact(o)
		total += len(outs[i])
	}
	x.ranks = make([]int32, 0, total)
	byNode := make([][]acEdge, n)
	for i := range x.nodes {
		nd := &x.nodes[i]
		byNode[i] = x.edges[nd.edgeLo:nd.edgeHi]
		nd.outLo = int32(len(x.ranks))
		x.ranks = append(x.ranks, outs[i]...)
		nd.outHi = int32(len(x.ranks))
		nd.dict = -1
	}
	for _, e := range byNode[0] {
		x.root[e.b] = e.to
	}
	// Fail and dictionary links, breadth first.
	queue := make([]int32, 0, n)
	for _, e := range byNode[0] {
		queue = append(queue, e.to)
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, e := range x.edges[x.nodes[u].edgeLo:x.nodes[u].edgeHi] {
			v := e.to
			f := x.nodes[u].fail
			x.nodes[v].fail = x.step(f, e.b)
			if ff := x.nodes[v].fail; x.nodes[ff].outHi > x.nodes[ff].outLo {
				x.nodes[v].dict = ff
			} else {
				x.nodes[v].dict = x.nodes[ff].dict
			}
			queue = append(queue, v)
		}
	}
	return x
}

// next returns node s's child on byte c, or -1.
func (x *litIndex) next(s int32, c byte) int32 {
	nd := &x.nodes[s]
	es := x.edges[nd.edgeLo:nd.edgeHi]
	if len(es) > 8 {
		i, ok := slices.BinarySearchFunc(es, c, func(e acEdge, c byte) int { return int(e.b) - int(c) })
		if ok {
			return es[i].to
		}
		return -1
	}
	for _, e := range es {
		if e.b == c {
			return e.to
		}
	}
	return -1
}

// step moves from node s on byte c, following fail links.
func (x *litIndex) step(s int32, c byte) int32 {
	for s != 0 {
		if t := x.next(s, c); t >= 0 {
			return t
		}
		s = x.nodes[s].fail
	}
	return x.root[c]
}

// find appends to buf the ranks of the literals that occur in text (in canonical case),
// with repeats.
func (x *litIndex) find(text []byte, buf []int32) []int32 {
	s := int32(0)
	for _, c := range text {
		s = x.step(s, c)
		for o := s; o > 0; o = x.nodes[o].dict {
			nd := &x.nodes[o]
			buf = append(buf, x.ranks[nd.outLo:nd.outHi]...)
		}
	}
	return buf
}

// size returns the bytes the index holds.
func (x *litIndex) size() int {
	if x == nil {
		return 0
	}
	return len(x.root)*4 + cap(x.nodes)*24 + cap(x.edges)*8 + cap(x.ranks)*4
}
