\dn
\l
\di
\dt+
