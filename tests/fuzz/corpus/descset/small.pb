
¬
fz.protofz"x
A
s (	Rs
a (2.fz.ARa
m (2.fz.A.MEntryRm4
MEntry
key (	Rkey
value (Rvalue:82
S
Get.fz.A.fz.A0bproto3