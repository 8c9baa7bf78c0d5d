//! zig_payment_plan: monthly instalments for a purchase paid in parts, for a
//! sales or service assistant ("what would I pay per month over two years?").
//!
//! A Switchboard WASI-command plugin in Zig (wasm32-wasi): it reads the call
//! as JSON on stdin, prints its result as JSON on stdout, and exits with
//! status 1 and a message on stderr when the call fails. Its tool is declared
//! in plugins/zig_payment_plan.toml. See docs/plugins/zig.md.

const std = @import("std");

/// What Switchboard writes on stdin (`call` is ignored here).
const Request = struct {
    name: []const u8,
    arguments: std.json.Value,
};

const Args = struct {
    /// The price to pay off, in the shop's currency.
    amount: f64,
    /// Yearly interest rate in percent (0 for interest-free).
    annual_rate_percent: f64 = 0,
    /// Number of monthly payments.
    months: u32,
};

const Plan = struct {
    monthly_payment: f64,
    months: u32,
    total_paid: f64,
    total_interest: f64,
    summary: []const u8,
};

/// A failure worded for the LLM; `main` prints it on stderr and exits 1.
const Failure = struct { message: []const u8 };

fn cents(x: f64) f64 {
    return @round(x * 100) / 100;
}

fn plan(gpa: std.mem.Allocator, args: Args) !union(enum) { ok: Plan, failed: Failure } {
    if (!(args.amount > 0) or args.amount > 10_000_000)
        return .{ .failed = .{ .message = "invalid arguments: \"amount\" must be between 0 and 10,000,000" } };
    if (args.months < 1 or args.months > 360)
        return .{ .failed = .{ .message = "invalid arguments: \"months\" must be between 1 and 360" } };
    if (args.annual_rate_percent < 0 or args.annual_rate_percent > 100)
        return .{ .failed = .{ .message = "invalid arguments: \"annual_rate_percent\" must be between 0 and 100" } };

    const n: f64 = @floatFromInt(args.months);
    const r = args.annual_rate_percent / 100 / 12;
    const payment = if (r == 0) args.amount / n else args.amount * r / (1 - std.math.pow(f64, 1 + r, -n));
    const monthly = cents(payment);
    const total = cents(payment * n);
    const summary = try std.fmt.allocPrint(
        gpa,
        "That is {d:.2} per month for {d} months, {d:.2} in total, of which {d:.2} is interest.",
        .{ monthly, args.months, total, cents(total - args.amount) },
    );
    return .{ .ok = .{
        .monthly_payment = monthly,
        .months = args.months,
        .total_paid = total,
        .total_interest = cents(total - args.amount),
        .summary = summary,
    } };
}

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    const gpa = init.arena.allocator();

    var in_buffer: [4096]u8 = undefined;
    var stdin = std.Io.File.stdin().reader(io, &in_buffer);
    const input = try stdin.interface.allocRemaining(gpa, .limited(1 << 20));

    var out_buffer: [4096]u8 = undefined;
    var stdout = std.Io.File.stdout().writer(io, &out_buffer);
    var err_buffer: [1024]u8 = undefined;
    var stderr = std.Io.File.stderr().writer(io, &err_buffer);

    const failure: []const u8 = fail: {
        const request = std.json.parseFromSliceLeaky(Request, gpa, input, .{ .ignore_unknown_fields = true }) catch
            break :fail "the request on stdin is not the JSON Switchboard sends";
        if (!std.mem.eql(u8, request.name, "payment_plan"))
            break :fail try std.fmt.allocPrint(gpa, "unknown tool: {s}", .{request.name});
        const args = std.json.parseFromValueLeaky(Args, gpa, request.arguments, .{ .ignore_unknown_fields = true }) catch |e|
            break :fail try std.fmt.allocPrint(gpa, "invalid arguments: expected {{\"amount\": number, \"months\": integer, \"annual_rate_percent\"?: number}} ({s})", .{@errorName(e)});
        switch (try plan(gpa, args)) {
            .failed => |f| break :fail f.message,
            .ok => |p| {
                try std.json.Stringify.value(p, .{}, &stdout.interface);
                try stdout.interface.writeAll("\n");
                try stdout.interface.flush();
                return;
            },
        }
    };
    try stderr.interface.print("{s}\n", .{failure});
    try stderr.interface.flush();
    std.process.exit(1);
}
