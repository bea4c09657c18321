// Added to sigs.k8s.io/kube-network-policies/pkg/networkpolicy at build time
// through `go build -overlay` (see ../nfqueuegen and ../build.sh). Our code,
// not upstream's.
//
// Kernels built without CONFIG_NFT_QUEUE refuse the native nftables `queue`
// expression (netlink: ENOENT, the whole transaction is rejected, and
// kube-network-policies then enforces nothing). The xtables NFQUEUE target
// (xt_NFQUEUE, revision 3) used through nft_compat does the same thing:
//
//	struct xt_NFQ_info_v3 { __u16 queuenum; __u16 queues_total; __u16 flags; };
//	flags: NFQ_FLAG_BYPASS 0x01, NFQ_FLAG_CPU_FANOUT 0x02
//
// Mode: KNP_NFQUEUE_MODE=native|compat|auto (default auto: try a native queue
// rule once in a scratch table inside a transaction that also deletes it; on
// error use the compat target).

package networkpolicy

import (
	"encoding/binary"
	"os"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"k8s.io/klog/v2"
)

const (
	nfqCompatFlagBypass = 0x01 // NFQ_FLAG_BYPASS
	nfqCompatFlagFanout = 0x02 // NFQ_FLAG_CPU_FANOUT
)

var (
	nfqCompatOnce sync.Once
	nfqCompatUse  bool
)

func nfqueueCompatEnabled() bool {
	nfqCompatOnce.Do(func() {
		switch mode := os.Getenv("KNP_NFQUEUE_MODE"); mode {
		case "native":
			nfqCompatUse = false
		case "compat":
			nfqCompatUse = true
		default:
			err := nfqueueNativeProbe()
			nfqCompatUse = err != nil
			klog.InfoS("nfqueue compat: probed native nftables queue expression", "mode", mode, "nativeError", err, "useXtNFQUEUE", nfqCompatUse)
			return
		}
		klog.InfoS("nfqueue compat: mode forced", "useXtNFQUEUE", nfqCompatUse)
	})
	return nfqCompatUse
}

// nfqueueNativeProbe adds and deletes a scratch table holding one native
// queue rule in a single transaction: no residue either way.
func nfqueueNativeProbe() error {
	nft, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: "kube-network-policies-nfq-probe", Family: nftables.TableFamilyINet}
	nft.AddTable(t)
	ch := nft.AddChain(&nftables.Chain{Name: "probe", Table: t})
	nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Queue{Num: 0, Flag: expr.QueueFlagBypass}}})
	nft.DelTable(t)
	return nft.Flush()
}

// nfqueueCompat replaces `&expr.Queue{...}` (rewritten call site).
func nfqueueCompat(q *expr.Queue) expr.Any {
	if !nfqueueCompatEnabled() {
		return q
	}
	return nfqueueCompatTarget(*q)
}

// nfqueueCompatTarget: `-j NFQUEUE --queue-num N [--queue-balance N:N+T-1] [--queue-bypass] [--queue-cpu-fanout]`.
func nfqueueCompatTarget(q expr.Queue) *expr.Target {
	total := q.Total
	if total == 0 {
		total = 1
	}
	var flags uint16
	if q.Flag&expr.QueueFlagBypass != 0 {
		flags |= nfqCompatFlagBypass
	}
	if q.Flag&expr.QueueFlagFanout != 0 {
		flags |= nfqCompatFlagFanout
	}
	// 6 bytes of struct + 2 bytes padding to XT_ALIGN (8), exactly what
	// iptables-nft sends; the kernel also accepts the bare 6 bytes (probe).
	info := make(xt.Unknown, 8) // host byte order, like the kernel struct
	binary.NativeEndian.PutUint16(info[0:], q.Num)
	binary.NativeEndian.PutUint16(info[2:], total)
	binary.NativeEndian.PutUint16(info[4:], flags)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

// nfqueueCompatUpdate replaces `v.Field = X` on a rewritten variable.
func nfqueueCompatUpdate(e expr.Any, set func(*expr.Queue)) expr.Any {
	switch v := e.(type) {
	case *expr.Queue:
		set(v)
		return v
	case *expr.Target:
		info := []byte(*v.Info.(*xt.Unknown))
		q := expr.Queue{
			Num:   binary.NativeEndian.Uint16(info[0:]),
			Total: binary.NativeEndian.Uint16(info[2:]),
		}
		flags := binary.NativeEndian.Uint16(info[4:])
		if flags&nfqCompatFlagBypass != 0 {
			q.Flag |= expr.QueueFlagBypass
		}
		if flags&nfqCompatFlagFanout != 0 {
			q.Flag |= expr.QueueFlagFanout
		}
		set(&q)
		*v = *nfqueueCompatTarget(q) // in place: earlier holders see the update
		return v
	}
	panic("nfqueueCompatUpdate: unexpected expression type")
}
