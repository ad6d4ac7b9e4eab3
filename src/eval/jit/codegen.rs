//! Translation of one lowered expression into a Cranelift function.
//!
//! Consumes: an [`ir::Expr`]. Produces: the body of `fn(rt: *mut Rt) -> u32` in a
//! [`FunctionBuilder`], plus entries in the module's [`Tables`] (node spans, call sites, `&`
//! chains, parameters) and constants, and the frame sizes the function needs ([`FrameSize`]).
//!
//! Every node computes a pointer to its value: an attribute of the object, a constant of the
//! module, a static boolean or a temporary of the frame. Control flow (`IIF`, `Switch`, `&&`,
//! `||`, loops), comparisons and arithmetic of numbers, `BitAnd`/`BitOr`, `IsPresent`/`IsNull`
//! and attribute loads by slot are generated code; everything else calls a runtime helper that
//! reports errors through its status. Steps are counted per node in the interpreter's order,
//! so the step limit fails at the same node on both engines.

use super::runtime::{self as rtm, Rt, Tables};
use crate::ir::BinOp;
use crate::ir::{Expr, Node};
use crate::value::Value;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    self as cir, AbiParam, Block, InstBuilder, MemFlagsData, SigRef, Signature, StackSlotData,
    StackSlotKind, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::HashMap;
use std::mem::{offset_of, size_of};

const P: cir::Type = types::I64;
const I32: cir::Type = types::I32;
const VSIZE: i64 = size_of::<Value>() as i64;
const PAYLOAD: i32 = Value::PAYLOAD;

/// What is known of the layout of values beyond the tag and payload offsets.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Offset of the length of a string or collection in a value.
    pub len: Option<i32>,
    /// Offset of a string's data pointer in a value, and of its bytes from that pointer.
    pub str_data: Option<(i32, i64)>,
}

/// How much frame one generated function needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameSize {
    pub temps: u32,
    pub vars: u32,
    pub accs: u32,
    /// The function needs the growable scratch space (loops, calls of over four arguments).
    pub heap: bool,
    /// Steps are counted by the generated code (the expression has loops). Otherwise no
    /// evaluation takes more than `nodes` steps, and one under a smaller step limit is left to
    /// the interpreter, which fails at the same node.
    pub counted: bool,
    /// The number of nodes of the expression.
    pub nodes: u32,
}

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn off(o: usize) -> i32 {
    o as i32
}

/// An address as an immediate.
fn addr<T>(p: *const T) -> i64 {
    p as usize as i64
}

pub struct Gen<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub tables: &'a mut Tables,
    /// Boxed: generated code holds their addresses, which must not move.
    #[allow(clippy::vec_box)]
    pub consts: &'a mut Vec<Box<Value>>,
    pub call_conv: CallConv,
    /// Where the length of a string or collection is inside a value, if known.
    len_offset: Option<i32>,
    /// Where a string's bytes are (see `runtime::str_data`), if known.
    str_data: Option<(i32, i64)>,
    max_bytes: cir::Value,
    sigs: HashMap<(Vec<cir::Type>, Option<cir::Type>), SigRef>,
    /// Pointers to number constants, with their numbers.
    nums: HashMap<cir::Value, i64>,
    rt: cir::Value,
    attrs: cir::Value,
    attrs_len: cir::Value,
    imported: cir::Value,
    imported_len: cir::Value,
    temps: cir::Value,
    vars: cir::Value,
    max_steps: cir::Value,
    steps: Variable,
    err: Block,
    step_fail: Block,
    frame: FrameSize,
    depth: u32,
    loops: u32,
}

impl<'a, 'b> Gen<'a, 'b> {
    /// Emits the whole function for `e`.
    #[allow(clippy::vec_box)]
    pub fn function(
        b: &'a mut FunctionBuilder<'b>,
        tables: &'a mut Tables,
        consts: &'a mut Vec<Box<Value>>,
        call_conv: CallConv,
        layout: Layout,
        e: &Expr,
    ) -> FrameSize {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let rt = b.block_params(entry)[0];
        // The frame's inputs do not change during a call: read-only loads, which the optimizer
        // drops where a function does not use them.
        let input = flags().with_readonly().with_can_move();
        let load = |b: &mut FunctionBuilder, o: usize| b.ins().load(P, input, rt, off(o));
        let attrs = load(b, offset_of!(Rt, attrs));
        let attrs_len = load(b, offset_of!(Rt, attrs_len));
        let imported = load(b, offset_of!(Rt, imported));
        let imported_len = load(b, offset_of!(Rt, imported_len));
        let temps = load(b, offset_of!(Rt, temps));
        let vars = load(b, offset_of!(Rt, vars));
        let max_steps = load(b, offset_of!(Rt, max_steps));
        let max_bytes = load(b, offset_of!(Rt, max_bytes));
        let steps = b.declare_var(P);
        let zero = b.ins().iconst(P, 0);
        b.def_var(steps, zero);
        let err = b.create_block();
        b.set_cold_block(err);
        let step_fail = b.create_block();
        b.set_cold_block(step_fail);
        b.append_block_param(step_fail, I32);
        let mut g = Gen {
            b,
            tables,
            consts,
            call_conv,
            len_offset: layout.len,
            str_data: layout.str_data,
            max_bytes,
            sigs: HashMap::new(),
            nums: HashMap::new(),
            rt,
            attrs,
            attrs_len,
            imported,
            imported_len,
            temps,
            vars,
            max_steps,
            steps,
            err,
            step_fail,
            frame: FrameSize {
                counted: has_loops(e),
                ..FrameSize::default()
            },
            depth: 0,
            loops: 0,
        };
        let result = g.value(e);
        g.b.ins()
            .store(flags(), result, g.rt, off(offset_of!(Rt, result)));
        let ok = g.b.ins().iconst(I32, rtm::OK as i64);
        g.b.ins().return_(&[ok]);

        g.b.switch_to_block(g.step_fail);
        let node = g.b.block_params(g.step_fail)[0];
        let status = g.helper(
            rtm::rt_step_fail as *const u8,
            &[P, I32],
            Some(I32),
            &[g.rt, node],
        );
        g.b.ins().return_(&[status]);

        g.b.switch_to_block(g.err);
        let failed = g.b.ins().iconst(I32, rtm::FAILED as i64);
        g.b.ins().return_(&[failed]);
        g.b.seal_all_blocks();
        g.frame
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn sig(&mut self, params: &[cir::Type], ret: Option<cir::Type>) -> SigRef {
        let key = (params.to_vec(), ret);
        if let Some(s) = self.sigs.get(&key) {
            return *s;
        }
        let mut sig = Signature::new(self.call_conv);
        sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        sig.returns.extend(ret.map(AbiParam::new));
        let s = self.b.import_signature(sig);
        self.sigs.insert(key, s);
        s
    }

    /// Calls a runtime helper by address.
    fn helper(
        &mut self,
        f: *const u8,
        params: &[cir::Type],
        ret: Option<cir::Type>,
        args: &[cir::Value],
    ) -> cir::Value {
        let sig = self.sig(params, ret);
        let callee = self.b.ins().iconst(P, f as usize as i64);
        let call = self.b.ins().call_indirect(sig, callee, args);
        self.b.inst_results(call).first().copied().unwrap_or(callee)
    }

    /// Continues only when `status` is 0.
    fn check(&mut self, status: cir::Value) {
        let cont = self.b.create_block();
        self.b.ins().brif(status, self.err, &[], cont, &[]);
        self.b.switch_to_block(cont);
    }

    fn span_id(&mut self, e: &Expr) -> u32 {
        self.tables.spans.push(e.span.clone());
        (self.tables.spans.len() - 1) as u32
    }

    /// Counts one step at node `e` (the interpreter's `ctx.step()`); returns the node's id.
    fn step(&mut self, e: &Expr) -> u32 {
        let node = self.span_id(e);
        self.frame.nodes += 1;
        if !self.frame.counted {
            // Without loops an evaluation visits each node at most once, so the caller checks
            // the limit against the node count up front (see `FrameSize::counted`).
            return node;
        }
        let s = self.b.use_var(self.steps);
        let s = self.b.ins().iadd_imm_s(s, 1);
        self.b.def_var(self.steps, s);
        let over = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThan, s, self.max_steps);
        let cont = self.b.create_block();
        let n = self.b.ins().iconst(I32, node as i64);
        self.b
            .ins()
            .brif(over, self.step_fail, &[n.into()], cont, &[]);
        self.b.switch_to_block(cont);
        node
    }

    fn iconst(&mut self, v: i64) -> cir::Value {
        self.b.ins().iconst(P, v)
    }

    fn static_ptr(&mut self, v: &'static Value) -> cir::Value {
        self.iconst(addr(v))
    }

    fn const_ptr(&mut self, v: &Value) -> cir::Value {
        match v {
            Value::Null => self.static_ptr(&rtm::NULL),
            Value::Bool(true) => self.static_ptr(&rtm::TRUE),
            Value::Bool(false) => self.static_ptr(&rtm::FALSE),
            other => {
                let boxed = Box::new(other.clone());
                let p = addr(&*boxed);
                self.consts.push(boxed);
                let v = self.iconst(p);
                if let Value::Num(n) = other {
                    self.nums.insert(v, *n);
                }
                v
            }
        }
    }

    /// A fresh temporary; returns its address.
    fn temp(&mut self) -> cir::Value {
        let i = self.frame.temps;
        self.frame.temps += 1;
        self.b.ins().iadd_imm_s(self.temps, i as i64 * VSIZE)
    }

    fn tag(&mut self, p: cir::Value) -> cir::Value {
        self.b.ins().uload8(I32, flags(), p, 0)
    }

    fn tag_is(&mut self, p: cir::Value, tag: u8) -> cir::Value {
        let t = self.tag(p);
        self.b.ins().icmp_imm_s(IntCC::Equal, t, tag as i64)
    }

    /// Stores a number into temporary `t` in place.
    fn store_num(&mut self, t: cir::Value, n: cir::Value) {
        if self.loops > 0 {
            self.helper(rtm::rt_clear as *const u8, &[P], None, &[t]);
        }
        let tag = self.b.ins().iconst(I32, Value::TAG_NUM as i64);
        self.b.ins().istore8(flags(), tag, t, 0);
        self.b.ins().store(flags(), n, t, PAYLOAD);
    }

    /// The address of slot `slot` of an attribute array, or of NULL beyond its end.
    fn load_slot(&mut self, base: cir::Value, len: cir::Value, slot: u32) -> cir::Value {
        let inb = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThan, len, slot as i64);
        let a = self.b.ins().iadd_imm_s(base, slot as i64 * VSIZE);
        let null = self.static_ptr(&rtm::NULL);
        self.b.ins().select(inb, a, null)
    }

    /// A block that takes one pointer and returns it as the value of the construct.
    fn merge_block(&mut self) -> Block {
        let m = self.b.create_block();
        self.b.append_block_param(m, P);
        m
    }

    fn finish_merge(&mut self, m: Block) -> cir::Value {
        self.b.switch_to_block(m);
        self.b.block_params(m)[0]
    }

    // ---- values ---------------------------------------------------------------------------

    /// Emits `e`; returns the address of its value.
    fn value(&mut self, e: &Expr) -> cir::Value {
        match &e.node {
            Node::Binary(BinOp::And | BinOp::Or, _)
            | Node::Binary(
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge,
                _,
            ) => {
                // A boolean-valued node: emitted as a condition, materialised as a pointer.
                let m = self.merge_block();
                let (t, f, many) = (
                    self.b.create_block(),
                    self.b.create_block(),
                    self.b.create_block(),
                );
                self.b.append_block_param(many, P);
                self.cond_node(e, t, f, many);
                self.b.switch_to_block(t);
                let p = self.static_ptr(&rtm::TRUE);
                self.b.ins().jump(m, &[p.into()]);
                self.b.switch_to_block(f);
                let p = self.static_ptr(&rtm::FALSE);
                self.b.ins().jump(m, &[p.into()]);
                self.b.switch_to_block(many);
                let p = self.b.block_params(many)[0];
                self.b.ins().jump(m, &[p.into()]);
                return self.finish_merge(m);
            }
            _ => {}
        }
        let node = self.step(e);
        match &e.node {
            Node::Const(v) => self.const_ptr(v),
            Node::Attr(s) => self.load_slot(self.attrs, self.attrs_len, *s),
            Node::Imported(s) => self.load_slot(self.imported, self.imported_len, *s),
            Node::ValueCount(s) => {
                let p = self.load_slot(self.attrs, self.attrs_len, *s);
                let t = self.temp();
                self.helper(rtm::rt_value_count as *const u8, &[P, P], None, &[p, t]);
                t
            }
            Node::Param(name) => {
                self.tables.params.push(name.clone());
                let i = self
                    .b
                    .ins()
                    .iconst(I32, (self.tables.params.len() - 1) as i64);
                self.helper(
                    rtm::rt_param as *const u8,
                    &[P, I32],
                    Some(P),
                    &[self.rt, i],
                )
            }
            Node::Var(i) => {
                if *i < self.depth {
                    self.b.ins().load(P, flags(), self.vars, (*i as i32) * 8)
                } else {
                    self.static_ptr(&rtm::NULL)
                }
            }
            Node::Call {
                name,
                f,
                args,
                mapped,
            } => self.call(node, name, *f, args, mapped),
            Node::Switch(items) => self.switch(items),
            Node::Select(parts) => {
                let [coll, body] = parts.as_ref();
                self.select(node, coll, body)
            }
            Node::Where(parts) => {
                let [coll, cond] = parts.as_ref();
                self.where_(node, coll, cond)
            }
            Node::With(parts) => {
                let [value, body] = parts.as_ref();
                let v = self.value(value);
                self.bind(v);
                let r = self.value(body);
                self.depth -= 1;
                r
            }
            Node::Error(msg) => {
                let m = self.value(msg);
                let n = self.b.ins().iconst(I32, node as i64);
                self.helper(
                    rtm::rt_error as *const u8,
                    &[P, P, I32],
                    Some(I32),
                    &[self.rt, m, n],
                );
                self.b.ins().jump(self.err, &[]);
                // Unreachable continuation for the code that follows.
                let dead = self.b.create_block();
                self.b.switch_to_block(dead);
                self.static_ptr(&rtm::NULL)
            }
            Node::Binary(BinOp::Concat, parts) => self.concat(node, e, parts),
            Node::Binary(op, parts) => {
                let [l, r] = parts.as_ref();
                let lp = self.value(l);
                let rp = self.value(r);
                self.arith(node, *op, lp, rp)
            }
            Node::Neg(x) => {
                let p = self.value(x);
                let t = self.temp();
                let (fast, slow, m) = (
                    self.b.create_block(),
                    self.b.create_block(),
                    self.merge_block(),
                );
                let is_num = self.tag_is(p, Value::TAG_NUM);
                self.b.ins().brif(is_num, fast, &[], slow, &[]);
                self.b.switch_to_block(fast);
                let n = self.b.ins().load(P, flags(), p, PAYLOAD);
                let min = self.b.ins().icmp_imm_s(IntCC::Equal, n, i64::MIN);
                let store = self.b.create_block();
                self.b.ins().brif(min, slow, &[], store, &[]);
                self.b.switch_to_block(store);
                let neg = self.b.ins().ineg(n);
                self.store_num(t, neg);
                self.b.ins().jump(m, &[t.into()]);
                self.b.switch_to_block(slow);
                let nn = self.b.ins().iconst(I32, node as i64);
                let s = self.helper(
                    rtm::rt_neg as *const u8,
                    &[P, P, P, I32],
                    Some(I32),
                    &[self.rt, p, t, nn],
                );
                self.check(s);
                self.b.ins().jump(m, &[t.into()]);
                self.finish_merge(m)
            }
            Node::Iif(parts) => {
                let [c, t, f] = parts.as_ref();
                self.iif(node, c, t, f)
            }
        }
    }

    /// Binds `v` as the next `$variable`.
    fn bind(&mut self, v: cir::Value) {
        let d = self.depth;
        self.b.ins().store(flags(), v, self.vars, (d as i32) * 8);
        self.depth += 1;
        self.frame.vars = self.frame.vars.max(self.depth);
    }

    /// Arithmetic: numbers inline (overflow and division by zero go to the general path).
    fn arith(&mut self, node: u32, op: BinOp, lp: cir::Value, rp: cir::Value) -> cir::Value {
        let t = self.temp();
        let (fast, slow, m) = (
            self.b.create_block(),
            self.b.create_block(),
            self.merge_block(),
        );
        let both = self.both_num(lp, rp);
        self.b.ins().brif(both, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let a = self.payload(lp);
        let c = self.payload(rp);
        let (res, bad) = match op {
            BinOp::Add => self.b.ins().sadd_overflow(a, c),
            BinOp::Sub => self.b.ins().ssub_overflow(a, c),
            BinOp::Mul => self.b.ins().smul_overflow(a, c),
            _ => {
                // Division: zero divisor or MIN / -1 take the general path (its error).
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, c, -1);
                let mn = self.b.ins().icmp_imm_s(IntCC::Equal, a, i64::MIN);
                let ovf = self.b.ins().band(m1, mn);
                let bad = self.b.ins().bor(zero, ovf);
                let ok = self.b.create_block();
                self.b.ins().brif(bad, slow, &[], ok, &[]);
                self.b.switch_to_block(ok);
                let q = self.b.ins().sdiv(a, c);
                let no = self.b.ins().iconst(types::I8, 0);
                (q, no)
            }
        };
        let store = self.b.create_block();
        self.b.ins().brif(bad, slow, &[], store, &[]);
        self.b.switch_to_block(store);
        self.store_num(t, res);
        self.b.ins().jump(m, &[t.into()]);
        self.b.switch_to_block(slow);
        let s = self.binary_helper(node, op, lp, rp, t);
        self.check(s);
        self.b.ins().jump(m, &[t.into()]);
        self.finish_merge(m)
    }

    fn both_num(&mut self, lp: cir::Value, rp: cir::Value) -> cir::Value {
        match (self.nums.contains_key(&lp), self.nums.contains_key(&rp)) {
            (true, true) => self.b.ins().iconst(types::I8, 1),
            (true, false) => self.tag_is(rp, Value::TAG_NUM),
            (false, true) => self.tag_is(lp, Value::TAG_NUM),
            (false, false) => {
                let a = self.tag_is(lp, Value::TAG_NUM);
                let b = self.tag_is(rp, Value::TAG_NUM);
                self.b.ins().band(a, b)
            }
        }
    }

    /// The number a value known to be a number holds (an immediate for a constant).
    fn payload(&mut self, p: cir::Value) -> cir::Value {
        match self.nums.get(&p) {
            Some(n) => self.b.ins().iconst(P, *n),
            None => self.b.ins().load(P, flags(), p, PAYLOAD),
        }
    }

    fn binary_helper(
        &mut self,
        node: u32,
        op: BinOp,
        lp: cir::Value,
        rp: cir::Value,
        out: cir::Value,
    ) -> cir::Value {
        let code = self.b.ins().iconst(I32, rtm::op_code(op) as i64);
        let n = self.b.ins().iconst(I32, node as i64);
        self.helper(
            rtm::rt_binary as *const u8,
            &[P, I32, P, P, P, I32],
            Some(I32),
            &[self.rt, code, lp, rp, out, n],
        )
    }

    /// `&`: a chain of concatenations of loads is one helper call; anything else goes pairwise.
    fn concat(&mut self, node: u32, e: &Expr, parts: &[Expr; 2]) -> cir::Value {
        let mut chain = Vec::new();
        let mut leaves = Vec::new();
        if flatten_concat(e, &mut chain, &mut leaves) && leaves.iter().all(|x| is_load(x)) {
            // Steps in the interpreter's order: the concatenations outermost first, then the
            // operands left to right (the outermost step was counted by the caller).
            let mut ids = vec![node];
            for c in chain.iter().skip(1) {
                ids.push(self.step(c));
            }
            ids.reverse();
            let n = leaves.len();
            let ptrs: Vec<cir::Value> = leaves.iter().map(|leaf| self.value(leaf)).collect();
            let argv = self.argv(&ptrs);
            self.tables.chains.push(ids);
            let ci = self
                .b
                .ins()
                .iconst(I32, (self.tables.chains.len() - 1) as i64);
            let nn = self.b.ins().iconst(I32, n as i64);
            let t = self.temp();
            let s = self.helper(
                rtm::rt_concat as *const u8,
                &[P, I32, P, I32, P],
                Some(I32),
                &[self.rt, ci, argv, nn, t],
            );
            self.check(s);
            return t;
        }
        let [l, r] = parts;
        let lp = self.value(l);
        let rp = self.value(r);
        let t = self.temp();
        let s = self.binary_helper(node, BinOp::Concat, lp, rp, t);
        self.check(s);
        t
    }

    fn call(
        &mut self,
        node: u32,
        name: &str,
        f: crate::builtins::BuiltinFn,
        args: &[Expr],
        mapped: &[bool],
    ) -> cir::Value {
        match (name, args, mapped) {
            ("IsPresent" | "IsNull" | "IsNullOrEmpty", [x], [false]) => {
                let p = self.value(x);
                let b = self.presence_test(name, p);
                let tp = self.static_ptr(&rtm::TRUE);
                let fp = self.static_ptr(&rtm::FALSE);
                return self.b.ins().select(b, tp, fp);
            }
            ("Trim", [x], [true]) if self.len_offset.is_some() && self.str_data.is_some() => {
                let p = self.value(x);
                return self.trim(node, f, mapped, p);
            }
            ("Left", [x, n], [true, true]) if self.len_offset.is_some() => {
                let p = self.value(x);
                let np = self.value(n);
                return self.left(node, f, mapped, p, np);
            }
            ("BitAnd" | "BitOr", [x, y], _) => {
                let lp = self.value(x);
                let rp = self.value(y);
                let t = self.temp();
                let (fast, slow, m) = (
                    self.b.create_block(),
                    self.b.create_block(),
                    self.merge_block(),
                );
                let both = self.both_num(lp, rp);
                self.b.ins().brif(both, fast, &[], slow, &[]);
                self.b.switch_to_block(fast);
                let a = self.payload(lp);
                let c = self.payload(rp);
                let r = if name == "BitAnd" {
                    self.b.ins().band(a, c)
                } else {
                    self.b.ins().bor(a, c)
                };
                self.store_num(t, r);
                self.b.ins().jump(m, &[t.into()]);
                self.b.switch_to_block(slow);
                let ptrs = [lp, rp];
                self.generic_call(node, f, mapped, &ptrs, t);
                self.b.ins().jump(m, &[t.into()]);
                return self.finish_merge(m);
            }
            _ => {}
        }
        let ptrs: Vec<cir::Value> = args.iter().map(|a| self.value(a)).collect();
        let t = self.temp();
        self.generic_call(node, f, mapped, &ptrs, t);
        t
    }

    /// `Trim` of a string that has nothing to trim is that string: when the first and the last
    /// byte are visible ASCII (every whitespace `str::trim` removes is ASCII space or control, or
    /// starts and ends with a byte of 0x80 or above) and the string is within the size limit,
    /// the result is the argument itself, with no call. Anything else calls the builtin.
    fn trim(
        &mut self,
        node: u32,
        f: crate::builtins::BuiltinFn,
        mapped: &[bool],
        p: cir::Value,
    ) -> cir::Value {
        let (Some(len_at), Some((ptr_at, data_off))) = (self.len_offset, self.str_data) else {
            let t = self.temp();
            self.generic_call(node, f, mapped, &[p], t);
            return t;
        };
        let m = self.merge_block();
        let (is_str, fits, bytes, slow) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        let s = self.tag_is(p, Value::TAG_STR);
        self.b.ins().brif(s, is_str, &[], slow, &[]);
        self.b.switch_to_block(is_str);
        let len = self.b.ins().load(P, flags(), p, len_at);
        let over = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThan, len, self.max_bytes);
        self.b.ins().brif(over, slow, &[], fits, &[]);
        self.b.switch_to_block(fits);
        let empty = self.b.ins().icmp_imm_s(IntCC::Equal, len, 0);
        self.b.ins().brif(empty, m, &[p.into()], bytes, &[]);
        self.b.switch_to_block(bytes);
        let base = self.b.ins().load(P, flags(), p, ptr_at);
        let data = self.b.ins().iadd_imm_s(base, data_off);
        let first = self.b.ins().uload8(I32, flags(), data, 0);
        let end = self.b.ins().iadd(data, len);
        let last = self.b.ins().uload8(I32, flags(), end, -1);
        let visible = |g: &mut Self, b: cir::Value| {
            // 0x21..=0x7E: b - 0x21 < 0x5E (unsigned).
            let d = g.b.ins().iadd_imm_s(b, -0x21);
            g.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, d, 0x5E)
        };
        let a = visible(self, first);
        let z = visible(self, last);
        let both = self.b.ins().band(a, z);
        self.b.ins().brif(both, m, &[p.into()], slow, &[]);
        self.b.switch_to_block(slow);
        let t = self.temp();
        self.generic_call(node, f, mapped, &[p], t);
        self.b.ins().jump(m, &[t.into()]);
        self.finish_merge(m)
    }

    /// `Left` of a string no longer (in bytes, so in characters too) than the count is that
    /// string, when it is within the size limit: the result is the argument itself, with no
    /// call. Anything else calls the builtin.
    fn left(
        &mut self,
        node: u32,
        f: crate::builtins::BuiltinFn,
        mapped: &[bool],
        p: cir::Value,
        np: cir::Value,
    ) -> cir::Value {
        let Some(len_at) = self.len_offset else {
            let t = self.temp();
            self.generic_call(node, f, mapped, &[p, np], t);
            return t;
        };
        let m = self.merge_block();
        let (nums, fits, slow) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        let s = self.tag_is(p, Value::TAG_STR);
        let k = if self.nums.contains_key(&np) {
            s
        } else {
            let num = self.tag_is(np, Value::TAG_NUM);
            self.b.ins().band(s, num)
        };
        self.b.ins().brif(k, nums, &[], slow, &[]);
        self.b.switch_to_block(nums);
        let len = self.b.ins().load(P, flags(), p, len_at);
        let n = self.payload(np);
        let short = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, len, n);
        let small = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, len, self.max_bytes);
        let whole = self.b.ins().band(short, small);
        self.b.ins().brif(whole, fits, &[], slow, &[]);
        self.b.switch_to_block(fits);
        self.b.ins().jump(m, &[p.into()]);
        self.b.switch_to_block(slow);
        let t = self.temp();
        self.generic_call(node, f, mapped, &[p, np], t);
        self.b.ins().jump(m, &[t.into()]);
        self.finish_merge(m)
    }

    /// The argument pointers of a helper call as an array on the stack (null for none).
    fn argv(&mut self, ptrs: &[cir::Value]) -> cir::Value {
        if ptrs.is_empty() {
            return self.iconst(0);
        }
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (ptrs.len() * 8) as u32,
            3,
        ));
        let argv = self.b.ins().stack_addr(P, slot, 0);
        for (i, p) in ptrs.iter().enumerate() {
            self.b.ins().store(flags(), *p, argv, (i * 8) as i32);
        }
        argv
    }

    fn generic_call(
        &mut self,
        node: u32,
        f: crate::builtins::BuiltinFn,
        mapped: &[bool],
        ptrs: &[cir::Value],
        out: cir::Value,
    ) {
        self.tables.calls.push(rtm::CallSite {
            f,
            mapped: mapped.to_vec(),
        });
        let ci = self
            .b
            .ins()
            .iconst(I32, (self.tables.calls.len() - 1) as i64);
        let argv = self.argv(ptrs);
        let n = self.b.ins().iconst(I32, node as i64);
        let s = self.helper(
            rtm::rt_call as *const u8,
            &[P, I32, P, P, I32],
            Some(I32),
            &[self.rt, ci, argv, out, n],
        );
        self.check(s);
    }

    /// `IsPresent`, `IsNull` or `IsNullOrEmpty` (which is exactly "not present") as an i8.
    fn presence_test(&mut self, name: &str, p: cir::Value) -> cir::Value {
        match name {
            "IsNull" => self.presence(false, p),
            "IsNullOrEmpty" => {
                let present = self.presence(true, p);
                self.b.ins().icmp_imm_s(IntCC::Equal, present, 0)
            }
            _ => self.presence(true, p),
        }
    }

    /// `IsPresent`/`IsNull` of the value at `p` as an i8: tags decide, except for strings and
    /// collections (a helper looks at their values).
    fn presence(&mut self, present: bool, p: cir::Value) -> cir::Value {
        let tag = self.tag(p);
        let m = self.b.create_block();
        self.b.append_block_param(m, types::I8);
        let (simple, other) = (self.b.create_block(), self.b.create_block());
        let is_many = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, tag, Value::TAG_MANY as i64);
        if present {
            // A string or reference is present when it is not empty; a collection when one of
            // its values is not an empty string (a helper looks).
            let text = self.b.create_block();
            let is_str = self
                .b
                .ins()
                .icmp_imm_s(IntCC::Equal, tag, Value::TAG_STR as i64);
            let is_ref = self
                .b
                .ins()
                .icmp_imm_s(IntCC::Equal, tag, Value::TAG_REF as i64);
            let textual = self.b.ins().bor(is_str, is_ref);
            self.b.ins().brif(textual, text, &[], other, &[]);
            self.b.switch_to_block(text);
            let r = match self.len_offset {
                Some(off) => {
                    let n = self.b.ins().load(P, flags(), p, off);
                    self.b.ins().icmp_imm_s(IntCC::NotEqual, n, 0)
                }
                None => {
                    let r = self.helper(rtm::rt_is_present as *const u8, &[P], Some(I32), &[p]);
                    self.b.ins().ireduce(types::I8, r)
                }
            };
            self.b.ins().jump(m, &[r.into()]);
            self.b.switch_to_block(other);
            let look = self.b.create_block();
            self.b.ins().brif(is_many, look, &[], simple, &[]);
            self.b.switch_to_block(look);
            let r = self.helper(rtm::rt_is_present as *const u8, &[P], Some(I32), &[p]);
            let r = self.b.ins().ireduce(types::I8, r);
            self.b.ins().jump(m, &[r.into()]);
        } else {
            // NULL has no values; a collection has as many as its length.
            self.b.ins().brif(is_many, other, &[], simple, &[]);
            self.b.switch_to_block(other);
            let n = match self.len_offset {
                Some(off) => self.b.ins().load(P, flags(), p, off),
                None => self.helper(rtm::rt_len as *const u8, &[P], Some(P), &[p]),
            };
            let r = self.b.ins().icmp_imm_s(IntCC::Equal, n, 0);
            self.b.ins().jump(m, &[r.into()]);
        }
        self.b.switch_to_block(simple);
        let null = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            tag,
            Value::TAG_LAST_NULL as i64,
        );
        let r = if present {
            self.b.ins().icmp_imm_s(IntCC::Equal, null, 0)
        } else {
            null
        };
        self.b.ins().jump(m, &[r.into()]);
        self.b.switch_to_block(m);
        self.b.block_params(m)[0]
    }

    // ---- conditions -----------------------------------------------------------------------

    /// Emits condition `e`: jumps to `t` or `f` for a scalar truth, to `many` (with the
    /// pointer) for a multi-valued condition; a non-boolean is the type error at `e`.
    fn cond(&mut self, e: &Expr, t: Block, f: Block, many: Block) {
        match &e.node {
            Node::Binary(
                BinOp::And
                | BinOp::Or
                | BinOp::Eq
                | BinOp::Ne
                | BinOp::Lt
                | BinOp::Le
                | BinOp::Gt
                | BinOp::Ge,
                _,
            ) => self.cond_node(e, t, f, many),
            Node::Call {
                name, args, mapped, ..
            } if matches!(*name, "IsPresent" | "IsNull" | "IsNullOrEmpty")
                && args.len() == 1
                && mapped.as_slice() == [false] =>
            {
                self.step(e);
                let p = self.value(&args[0]);
                let b = self.presence_test(name, p);
                self.b.ins().brif(b, t, &[], f, &[]);
            }
            _ => {
                let p = self.value(e);
                let node = self.span_id(e);
                self.truth(p, node, t, f, Some(many));
            }
        }
    }

    /// Branches on the truth of the value at `p`; a multi-valued value goes to `many` (or is
    /// the type error at `node` when there is none).
    fn truth(&mut self, p: cir::Value, node: u32, t: Block, f: Block, many: Option<Block>) {
        let other = self.b.create_block();
        let tag = self.branch_on_scalar(p, t, f, other);
        self.b.switch_to_block(other);
        if let Some(many) = many {
            let is_many = self
                .b
                .ins()
                .icmp_imm_s(IntCC::Equal, tag, Value::TAG_MANY as i64);
            let b4 = self.b.create_block();
            self.b.ins().brif(is_many, many, &[p.into()], b4, &[]);
            self.b.switch_to_block(b4);
        }
        let n = self.b.ins().iconst(I32, node as i64);
        self.helper(
            rtm::rt_truth_fail as *const u8,
            &[P, P, I32],
            Some(I32),
            &[self.rt, p, n],
        );
        self.b.ins().jump(self.err, &[]);
    }

    /// Branches on the value at `p`: a boolean to `t` or `f` by its value, NULL to `f`, anything
    /// else to `other`. Returns the tag.
    fn branch_on_scalar(&mut self, p: cir::Value, t: Block, f: Block, other: Block) -> cir::Value {
        let tag = self.tag(p);
        let (boolean, rest) = (self.b.create_block(), self.b.create_block());
        let is_bool = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, tag, Value::TAG_BOOL as i64);
        self.b.ins().brif(is_bool, boolean, &[], rest, &[]);
        self.b.switch_to_block(boolean);
        let v = self.b.ins().uload8(I32, flags(), p, PAYLOAD);
        self.b.ins().brif(v, t, &[], f, &[]);
        self.b.switch_to_block(rest);
        let null = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            tag,
            Value::TAG_LAST_NULL as i64,
        );
        self.b.ins().brif(null, f, &[], other, &[]);
        tag
    }

    /// A comparison or `&&`/`||` node as a condition (counts its own step).
    fn cond_node(&mut self, e: &Expr, t: Block, f: Block, many: Block) {
        let node = self.step(e);
        let Node::Binary(op, parts) = &e.node else {
            return;
        };
        let [l, r] = parts.as_ref();
        match op {
            BinOp::And | BinOp::Or => {
                // l is evaluated; a scalar l may decide; otherwise r is evaluated and a scalar
                // boolean or NULL r decides (x && y and x || y are y once x did not decide);
                // anything else takes the general path.
                let lp = self.value(l);
                let lmany = self.b.declare_var(I32);
                let zero = self.b.ins().iconst(I32, 0);
                self.b.def_var(lmany, zero);
                let right = self.b.create_block();
                let (scalar, lm) = (self.b.create_block(), self.b.create_block());
                let is_many = self.tag_is(lp, Value::TAG_MANY);
                self.b.ins().brif(is_many, lm, &[], scalar, &[]);
                self.b.switch_to_block(lm);
                let one = self.b.ins().iconst(I32, 1);
                self.b.def_var(lmany, one);
                self.b.ins().jump(right, &[]);
                self.b.switch_to_block(scalar);
                let lnode = self.span_id(l);
                if *op == BinOp::And {
                    self.truth(lp, lnode, right, f, None);
                } else {
                    self.truth(lp, lnode, t, right, None);
                }
                self.b.switch_to_block(right);
                let rp = self.value(r);
                let (general, rscalar) = (self.b.create_block(), self.b.create_block());
                let lm = self.b.use_var(lmany);
                self.b.ins().brif(lm, general, &[], rscalar, &[]);
                self.b.switch_to_block(rscalar);
                self.branch_on_scalar(rp, t, f, general);
                self.b.switch_to_block(general);
                let out = self.temp();
                let s = self.binary_helper(node, *op, lp, rp, out);
                self.check(s);
                self.truth(out, node, t, f, Some(many));
            }
            _ => {
                let lp = self.value(l);
                let rp = self.value(r);
                let (fast, slow) = (self.b.create_block(), self.b.create_block());
                let both = self.both_num(lp, rp);
                self.b.ins().brif(both, fast, &[], slow, &[]);
                self.b.switch_to_block(fast);
                let a = self.payload(lp);
                let c = self.payload(rp);
                let cc = match op {
                    BinOp::Eq => IntCC::Equal,
                    BinOp::Ne => IntCC::NotEqual,
                    BinOp::Lt => IntCC::SignedLessThan,
                    BinOp::Le => IntCC::SignedLessThanOrEqual,
                    BinOp::Gt => IntCC::SignedGreaterThan,
                    _ => IntCC::SignedGreaterThanOrEqual,
                };
                let r = self.b.ins().icmp(cc, a, c);
                self.b.ins().brif(r, t, &[], f, &[]);
                self.b.switch_to_block(slow);
                let out = self.temp();
                let s = self.binary_helper(node, *op, lp, rp, out);
                self.check(s);
                self.truth(out, node, t, f, Some(many));
            }
        }
    }

    /// `IIF`: only the taken branch runs; a multi-valued condition runs each branch some value
    /// picks, then zips the results.
    fn iif(&mut self, node: u32, c: &Expr, t: &Expr, f: &Expr) -> cir::Value {
        if scalar_condition(c) {
            // The condition is never multi-valued: plain branches.
            let (tb, fb, never) = (
                self.b.create_block(),
                self.b.create_block(),
                self.b.create_block(),
            );
            self.b.append_block_param(never, P);
            let merge = self.merge_block();
            self.cond(c, tb, fb, never);
            self.b.switch_to_block(never);
            self.b.ins().jump(self.err, &[]);
            self.b.switch_to_block(tb);
            let tv = self.value(t);
            self.b.ins().jump(merge, &[tv.into()]);
            self.b.switch_to_block(fb);
            let fv = self.value(f);
            self.b.ins().jump(merge, &[fv.into()]);
            return self.finish_merge(merge);
        }
        let multi = self.b.declare_var(I32);
        let cvar = self.b.declare_var(P);
        let tvar = self.b.declare_var(P);
        let zero = self.b.ins().iconst(I32, 0);
        self.b.def_var(multi, zero);
        let null = self.static_ptr(&rtm::NULL);
        self.b.def_var(cvar, null);
        self.b.def_var(tvar, null);
        let (tb, fb, many) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.append_block_param(many, P);
        let merge = self.merge_block();
        let after_t = self.b.create_block();
        self.b.append_block_param(after_t, P);
        let zip = self.b.create_block();
        self.b.append_block_param(zip, P);
        self.cond(c, tb, fb, many);

        // A multi-valued condition.
        self.b.switch_to_block(many);
        let cp = self.b.block_params(many)[0];
        let n = self.b.ins().iconst(I32, node as i64);
        let picks = self.helper(
            rtm::rt_picks as *const u8,
            &[P, P, I32],
            Some(I32),
            &[self.rt, cp, n],
        );
        let failed = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, picks, 0);
        let ok = self.b.create_block();
        self.b.ins().brif(failed, self.err, &[], ok, &[]);
        self.b.switch_to_block(ok);
        self.b.def_var(cvar, cp);
        let marked = self.b.ins().bor_imm_u(picks, 4);
        self.b.def_var(multi, marked);
        let any_t = self.b.ins().band_imm_u(picks, 1);
        let skip_t = self.b.create_block();
        self.b.ins().brif(any_t, tb, &[], skip_t, &[]);
        self.b.switch_to_block(skip_t);
        let null = self.static_ptr(&rtm::NULL);
        self.b.ins().jump(after_t, &[null.into()]);

        // The true branch.
        self.b.switch_to_block(tb);
        let tv = self.value(t);
        let m = self.b.use_var(multi);
        self.b
            .ins()
            .brif(m, after_t, &[tv.into()], merge, &[tv.into()]);

        self.b.switch_to_block(after_t);
        let tvp = self.b.block_params(after_t)[0];
        self.b.def_var(tvar, tvp);
        let m = self.b.use_var(multi);
        let any_f = self.b.ins().band_imm_u(m, 2);
        let null = self.static_ptr(&rtm::NULL);
        self.b.ins().brif(any_f, fb, &[], zip, &[null.into()]);

        // The false branch.
        self.b.switch_to_block(fb);
        let fv = self.value(f);
        let m = self.b.use_var(multi);
        self.b.ins().brif(m, zip, &[fv.into()], merge, &[fv.into()]);

        self.b.switch_to_block(zip);
        let fvp = self.b.block_params(zip)[0];
        let out = self.temp();
        let cp = self.b.use_var(cvar);
        let tvp = self.b.use_var(tvar);
        let n = self.b.ins().iconst(I32, node as i64);
        let s = self.helper(
            rtm::rt_iif_zip as *const u8,
            &[P, P, P, P, P, I32],
            Some(I32),
            &[self.rt, cp, tvp, fvp, out, n],
        );
        self.check(s);
        self.b.ins().jump(merge, &[out.into()]);
        self.finish_merge(merge)
    }

    /// `Switch`: every condition is evaluated in order; the first true one picks its value.
    fn switch(&mut self, items: &[Expr]) -> cir::Value {
        let pairs = items.len() / 2;
        let chosen = self.b.declare_var(I32);
        let none = self.b.ins().iconst(I32, -1);
        self.b.def_var(chosen, none);
        for i in 0..pairs {
            let c = &items[2 * i];
            let p = self.value(c);
            let node = self.span_id(c);
            let cur = self.b.use_var(chosen);
            let undecided = self.b.ins().icmp_imm_s(IntCC::Equal, cur, -1);
            let (test, yes, next) = (
                self.b.create_block(),
                self.b.create_block(),
                self.b.create_block(),
            );
            self.b.ins().brif(undecided, test, &[], next, &[]);
            self.b.switch_to_block(test);
            self.truth(p, node, yes, next, None);
            self.b.switch_to_block(yes);
            let iv = self.b.ins().iconst(I32, i as i64);
            self.b.def_var(chosen, iv);
            self.b.ins().jump(next, &[]);
            self.b.switch_to_block(next);
        }
        let merge = self.merge_block();
        let cur = self.b.use_var(chosen);
        for i in 0..pairs {
            let (this, next) = (self.b.create_block(), self.b.create_block());
            let is = self.b.ins().icmp_imm_s(IntCC::Equal, cur, i as i64);
            self.b.ins().brif(is, this, &[], next, &[]);
            self.b.switch_to_block(this);
            let v = self.value(&items[2 * i + 1]);
            self.b.ins().jump(merge, &[v.into()]);
            self.b.switch_to_block(next);
        }
        let null = self.static_ptr(&rtm::NULL);
        self.b.ins().jump(merge, &[null.into()]);
        self.finish_merge(merge)
    }

    /// A loop over the values of `coll`: `each` emits the body for the element at the given
    /// pointer (bound as the next variable) and returns the block to continue with.
    fn each_value(&mut self, coll: &Expr, body: impl FnOnce(&mut Self, cir::Value, u32)) -> u32 {
        let cp = self.value(coll);
        let n = self.helper(rtm::rt_len as *const u8, &[P], Some(P), &[cp]);
        let acc = self.frame.accs;
        self.frame.accs += 1;
        self.frame.heap = true;
        let i = self.b.declare_var(P);
        let zero = self.iconst(0);
        self.b.def_var(i, zero);
        let (head, bodyb, exit) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let iv = self.b.use_var(i);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, iv, n);
        self.b.ins().brif(more, bodyb, &[], exit, &[]);
        self.b.switch_to_block(bodyb);
        let elem = self.helper(rtm::rt_elem as *const u8, &[P, P], Some(P), &[cp, iv]);
        self.bind(elem);
        self.loops += 1;
        body(self, elem, acc);
        self.loops -= 1;
        self.depth -= 1;
        let iv = self.b.use_var(i);
        let next = self.b.ins().iadd_imm_s(iv, 1);
        self.b.def_var(i, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(exit);
        acc
    }

    fn finish_acc(&mut self, node: u32, acc: u32, check: bool) -> cir::Value {
        let out = self.temp();
        let a = self.b.ins().iconst(I32, acc as i64);
        let n = self.b.ins().iconst(I32, node as i64);
        let c = self.b.ins().iconst(I32, i64::from(check));
        let s = self.helper(
            rtm::rt_acc_finish as *const u8,
            &[P, I32, P, I32, I32],
            Some(I32),
            &[self.rt, a, out, n, c],
        );
        self.check(s);
        out
    }

    fn select(&mut self, node: u32, coll: &Expr, body: &Expr) -> cir::Value {
        let acc = self.each_value(coll, |g, _elem, acc| {
            let r = g.value(body);
            let a = g.b.ins().iconst(I32, acc as i64);
            let flat = g.b.ins().iconst(I32, 1);
            let n = g.b.ins().iconst(I32, node as i64);
            let s = g.helper(
                rtm::rt_acc_push as *const u8,
                &[P, I32, P, I32, I32],
                Some(I32),
                &[g.rt, a, r, flat, n],
            );
            g.check(s);
        });
        self.finish_acc(node, acc, true)
    }

    fn where_(&mut self, node: u32, coll: &Expr, cond: &Expr) -> cir::Value {
        let acc = self.each_value(coll, |g, elem, acc| {
            let r = g.value(cond);
            let cnode = g.span_id(cond);
            let (keep, skip) = (g.b.create_block(), g.b.create_block());
            g.truth(r, cnode, keep, skip, None);
            g.b.switch_to_block(keep);
            let a = g.b.ins().iconst(I32, acc as i64);
            let flat = g.b.ins().iconst(I32, 0);
            let n = g.b.ins().iconst(I32, node as i64);
            let s = g.helper(
                rtm::rt_acc_push as *const u8,
                &[P, I32, P, I32, I32],
                Some(I32),
                &[g.rt, a, elem, flat, n],
            );
            g.check(s);
            g.b.ins().jump(skip, &[]);
            g.b.switch_to_block(skip);
        });
        self.finish_acc(node, acc, false)
    }
}

/// Collects a left-nested chain of `&`: the concatenation nodes outermost first and the
/// operands left to right. Returns false for a node that is not `&`.
fn flatten_concat<'e>(e: &'e Expr, chain: &mut Vec<&'e Expr>, leaves: &mut Vec<&'e Expr>) -> bool {
    let Node::Binary(BinOp::Concat, parts) = &e.node else {
        return false;
    };
    chain.push(e);
    let [l, r] = parts.as_ref();
    if !flatten_concat(l, chain, leaves) {
        leaves.push(l);
    }
    leaves.push(r);
    true
}

/// Whether condition `e` always yields a scalar: a test of presence on its whole argument, a
/// boolean constant, or `&&`/`||`/`IIF` of such.
fn scalar_condition(e: &Expr) -> bool {
    match &e.node {
        Node::Const(v) => !matches!(v, Value::Many(_)),
        Node::Call {
            name, args, mapped, ..
        } => {
            matches!(*name, "IsPresent" | "IsNull" | "IsNullOrEmpty" | "IsEmpty")
                && args.len() == 1
                && mapped.as_slice() == [false]
        }
        Node::Binary(BinOp::And | BinOp::Or, p) => p.iter().all(scalar_condition),
        _ => false,
    }
}

/// Whether `e` contains `Select` or `Where` (whose bodies run once per value).
fn has_loops(e: &Expr) -> bool {
    matches!(e.node, Node::Select(_) | Node::Where(_)) || e.children().iter().any(has_loops)
}

/// An operand that cannot fail and has no operands of its own.
fn is_load(e: &Expr) -> bool {
    matches!(
        e.node,
        Node::Attr(_) | Node::Imported(_) | Node::Const(_) | Node::Param(_) | Node::Var(_)
    )
}
