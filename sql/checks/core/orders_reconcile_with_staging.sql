-- Core orders hold exactly the staged orders, amount for amount.
with staged as (
    select count(*) as n, coalesce(sum(net_amount), 0) as net from stg_orders
),

core as (
    select count(*) as n, coalesce(sum(net_amount), 0) as net from orders
)

select staged.n as staged_rows, core.n as core_rows, staged.net as staged_net, core.net as core_net
from staged, core
where staged.n <> core.n or staged.net <> core.net
