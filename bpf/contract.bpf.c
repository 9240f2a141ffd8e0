// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Not a program: names every type of contract.h, so that their BTF (enums included, which C only keeps
 * when something uses them) is there for tools/ContractGen and LayoutTests. Built into build/bpf-contract,
 * never loaded. */
#include "vmlinux.h"
#include "contract.h"

enum sa_op sa_contract_op;
enum sa_limit sa_contract_limit;
enum sa_fixed_point sa_contract_fixed_point;
enum sa_exec_flags sa_contract_exec_flags;
enum sa_lost_reason sa_contract_lost_reason;
enum sa_ns sa_contract_ns;
enum sa_arg_type sa_contract_arg_type;
enum sa_cmp sa_contract_cmp;
enum sa_action sa_contract_action;
enum sa_policy_event_flags sa_contract_policy_event_flags;
enum sa_dim_kind sa_contract_dim_kind;
enum sa_selector_flags sa_contract_selector_flags;
enum sa_point_flags sa_contract_point_flags;
enum sa_ev_file_info sa_contract_ev_file_info;
enum sa_proc_flags sa_contract_proc_flags;
enum sa_socktrack_stat sa_contract_socktrack_stat;
struct sa_ret_cmp sa_contract_ret_cmp;
struct event_header sa_contract_event_header;
struct exec_event sa_contract_exec_event;
struct fork_event sa_contract_fork_event;
struct exit_event sa_contract_exit_event;
struct loader_event sa_contract_loader_event;
struct sa_data_event sa_contract_data_event;
struct sa_loader_config sa_contract_loader_config;
struct policy_event sa_contract_policy_event;
struct sa_settings sa_contract_settings;
struct sa_reader sa_contract_reader;
struct sa_binary sa_contract_binary;
struct sa_point sa_contract_point;
struct sa_resolve sa_contract_resolve;
struct sa_selector_key sa_contract_selector_key;
struct sa_selector sa_contract_selector;
struct sa_ns_match sa_contract_ns_match;
struct sa_bitmap sa_contract_bitmap;
struct sa_str_key sa_contract_str_key;
struct sa_lpm_key sa_contract_lpm_key;
struct sa_int_key sa_contract_int_key;
struct sa_inode_key sa_contract_inode_key;
struct sa_addr_key sa_contract_addr_key;
struct sa_scope_key sa_contract_scope_key;
struct sa_deny_key sa_contract_deny_key;
struct sa_rate_key sa_contract_rate_key;
struct sa_hook_stats sa_contract_hook_stats;
struct sa_point_stats sa_contract_point_stats;
struct sa_sock_info sa_contract_sock_info;
struct sa_cred_info sa_contract_cred_info;
struct sa_bpf_info sa_contract_bpf_info;
struct sa_after_note sa_contract_after_note;
struct sa_proc sa_contract_proc;
struct sa_enf_note sa_contract_enf_note;
struct sa_enf_call_key sa_contract_enf_call_key;
