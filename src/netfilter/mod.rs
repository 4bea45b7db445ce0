//! Netfilter engine: iptables-save parser, rule model, evaluator (exhaustive and stateful with
//! conntrack, `recent` and `statistic` state), kube-proxy service map and affinity rewrite.
