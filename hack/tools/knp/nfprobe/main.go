// Command nfprobe tells whether this kernel can queue packets to user space from nftables, the way
// kube-network-policies decides each new connection: with the native `queue` expression (needs
// CONFIG_NFT_QUEUE) or with the xtables NFQUEUE target through nft_compat (what the adapted build
// uses when the native one is refused). It works in a network namespace of its own, so it never
// touches the caller's firewall, and prints one JSON object. Exit status 0 when either works.
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

type report struct {
	// NFTables: a table and a base chain can be created at all.
	NFTables      bool   `json:"nftables"`
	NFTablesError string `json:"nftablesError,omitempty"`
	// NativeQueue: the nftables `queue` expression is accepted.
	NativeQueue      bool   `json:"nativeQueue"`
	NativeQueueError string `json:"nativeQueueError,omitempty"`
	// CompatNFQUEUE: the xtables NFQUEUE target, revision 3, is accepted through nft_compat.
	CompatNFQUEUE      bool   `json:"compatNFQUEUE"`
	CompatNFQUEUEError string `json:"compatNFQUEUEError,omitempty"`
}

func main() {
	// A network namespace of its own, on a thread that never runs anything else.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		fmt.Fprintln(os.Stderr, "nfprobe: creating a network namespace (needs CAP_SYS_ADMIN):", err)
		os.Exit(2)
	}
	var r report
	r.NFTables, r.NFTablesError = try(nil)
	r.NativeQueue, r.NativeQueueError = try(&expr.Queue{Num: 100, Flag: expr.QueueFlagBypass})
	r.CompatNFQUEUE, r.CompatNFQUEUEError = try(nfqueueTarget(100))
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if !r.NativeQueue && !r.CompatNFQUEUE {
		os.Exit(1)
	}
}

// try installs, in one transaction, an inet table with a postrouting chain holding one rule that
// ends in e (no rule when e is nil).
func try(e expr.Any) (bool, string) {
	c, err := nftables.New()
	if err != nil {
		return false, err.Error()
	}
	t := c.AddTable(&nftables.Table{Name: "nfprobe", Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(95)})
	if e != nil {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{e}})
	}
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// nfqueueTarget is `-j NFQUEUE --queue-num num --queue-bypass`:
// struct xt_NFQ_info_v3 { __u16 queuenum; __u16 queues_total; __u16 flags; } in host byte order.
func nfqueueTarget(num uint16) *expr.Target {
	info := binary.NativeEndian.AppendUint16(nil, num)
	info = binary.NativeEndian.AppendUint16(info, 1)
	info = binary.NativeEndian.AppendUint16(info, 0x01) // NFQ_FLAG_BYPASS
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u}
}
