//! Whether a fallible command can return `Err` after it has recorded an event: only then does
//! it need a rollback point (and the copy of the state that the rollback costs). The answer is
//! conservative: anything this reading does not understand counts as both recording and
//! failing.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Block, Expr, Stmt};

/// Methods of `Aggregate<T>` that only read it (a call to any other method on `self` may
/// record events).
const AGGREGATE_READERS: &[&str] = &[
    "id",
    "version",
    "saved_version",
    "created_on",
    "modified_on",
    "state",
    "pending_events",
    "context",
    "checkpoint",
    "check_not_poisoned",
];

/// Standard macros that never return from the function they are in.
const CANNOT_RETURN: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "dbg",
    "eprint",
    "eprintln",
    "format",
    "matches",
    "panic",
    "print",
    "println",
    "todo",
    "unimplemented",
    "unreachable",
    "vec",
];

/// Whether the command body `block` may return `Err` after recording an event. `readers` are
/// the entity's own `&self` methods, which cannot record.
pub(crate) fn needs_rollback(block: &Block, readers: &BTreeSet<String>) -> bool {
    let mut recorded = false;
    let count = block.stmts.len();
    for (index, stmt) in block.stmts.iter().enumerate() {
        let mut scan = Scan::new(readers);
        let tail = index + 1 == count && matches!(stmt, Stmt::Expr(_, None));
        match stmt {
            // The value of the body: it fails unless it is `Ok(..)`.
            Stmt::Expr(expr, None) if tail => scan.value(expr),
            other => scan.visit_stmt(other),
        }
        // Within one statement the order is unknown (a loop may record, then fail): a
        // statement that does both needs the rollback.
        recorded |= scan.records;
        if recorded && scan.fails {
            return true;
        }
    }
    // A body without a tail value ends in a `return` or diverges; both were scanned.
    false
}

/// What one statement may do.
struct Scan<'a> {
    readers: &'a BTreeSet<String>,
    records: bool,
    fails: bool,
}

impl<'a> Scan<'a> {
    fn new(readers: &'a BTreeSet<String>) -> Self {
        Self {
            readers,
            records: false,
            fails: false,
        }
    }

    /// A value that becomes the command's result: `Ok(..)` cannot be an `Err`.
    fn value(&mut self, expr: &Expr) {
        match ok_args(expr) {
            Some(args) => args.for_each(|arg| self.visit_expr(arg)),
            None => {
                self.fails = true;
                self.visit_expr(expr);
            }
        }
    }

    fn reads_only(&self, method: &str) -> bool {
        self.readers.contains(method) || AGGREGATE_READERS.contains(&method)
    }
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if is_self(&call.receiver) {
            if !self.reads_only(&call.method.to_string()) {
                self.records = true;
            }
            for arg in &call.args {
                self.visit_expr(arg);
            }
            return;
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_field(&mut self, field: &'ast syn::ExprField) {
        // `self.tricks` reads the state (there is no `DerefMut`).
        if !is_self(&field.base) {
            visit::visit_expr_field(self, field);
        }
    }

    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        // Any other use of `self` (passed on, reborrowed, captured) may record.
        if path.path.is_ident("self") {
            self.records = true;
        }
    }

    fn visit_expr_try(&mut self, try_expr: &'ast syn::ExprTry) {
        self.fails = true;
        visit::visit_expr_try(self, try_expr);
    }

    fn visit_expr_return(&mut self, ret: &'ast syn::ExprReturn) {
        match &ret.expr {
            Some(expr) => self.value(expr),
            None => self.fails = true,
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // A macro may expand to a `return` its tokens do not show (`ensure!(..)`): only the
        // standard ones below cannot. Its arguments are not parsed: judge them by their tokens.
        let known = mac
            .path
            .segments
            .last()
            .is_some_and(|segment| CANNOT_RETURN.iter().any(|name| segment.ident == name));
        if !known {
            self.fails = true;
        }
        scan_tokens(mac.tokens.clone(), self);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {
        // A nested item has its own `self` and its own returns.
    }
}

fn scan_tokens(tokens: TokenStream, scan: &mut Scan<'_>) {
    for token in tokens {
        match token {
            TokenTree::Ident(ident) if ident == "self" => scan.records = true,
            TokenTree::Ident(ident) if ident == "return" => scan.fails = true,
            TokenTree::Punct(punct) if punct.as_char() == '?' => scan.fails = true,
            TokenTree::Group(group) => scan_tokens(group.stream(), scan),
            _ => {}
        }
    }
}

fn is_self(expr: &Expr) -> bool {
    match expr {
        Expr::Path(path) => path.path.is_ident("self"),
        Expr::Paren(paren) => is_self(&paren.expr),
        _ => false,
    }
}

/// The arguments of `Ok(..)` (or `Result::Ok(..)`), if `expr` is such a call.
fn ok_args(expr: &Expr) -> Option<impl Iterator<Item = &Expr>> {
    match expr {
        Expr::Call(call) => match &*call.func {
            Expr::Path(path)
                if path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == "Ok") =>
            {
                Some(call.args.iter())
            }
            _ => None,
        },
        Expr::Paren(paren) => ok_args(&paren.expr),
        _ => None,
    }
}
