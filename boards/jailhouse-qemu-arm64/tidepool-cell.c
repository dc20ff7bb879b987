/*
 * The Tidepool cell for Jailhouse's QEMU arm64 target, in Jailhouse's cell
 * config format. Build it in a Jailhouse source tree (copy it to configs/arm64/
 * and run make), then `jailhouse cell create tidepool-cell.cell`.
 *
 * What the image needs of the cell, and where the image's board says the same:
 *   CPU 1                          board.rs JAILHOUSE_CELL.cpu
 *   RAM: 64 MiB at IPA 0x4000_0000 board.rs JAILHOUSE_CELL.ram
 *        (physical 0x7000_0000, above the root cell's mem=768M)
 *   comm region at IPA 0x8000_0000 board.rs JAILHOUSE_CELL.comm_region
 *   cpu_reset_address 0x4020_0000  board.toml load-address, link.ld
 *   PL011 at 0x0900_0000, shared   the comm region's console (divider 0)
 *   GICv3, no SPI owned
 *
 * The comm region is active (no JAILHOUSE_CELL_PASSIVE_COMMREG): the image
 * answers shutdown requests and reconfiguration notices while it runs.
 * Define TIDEPOOL_PASSIVE to build the passive variant.
 */

#include <jailhouse/types.h>
#include <jailhouse/cell-config.h>

struct {
	struct jailhouse_cell_desc cell;
	__u64 cpus[1];
	struct jailhouse_memory mem_regions[3];
	struct jailhouse_irqchip irqchips[1];
} __attribute__((packed)) config = {
	.cell = {
		.signature = JAILHOUSE_CELL_DESC_SIGNATURE,
		.revision = JAILHOUSE_CONFIG_REVISION,
		.architecture = JAILHOUSE_ARM64,
		.name = "tidepool",
#ifdef TIDEPOOL_PASSIVE
		.flags = JAILHOUSE_CELL_PASSIVE_COMMREG,
#endif
		.cpu_set_size = sizeof(config.cpus),
		.num_memory_regions = ARRAY_SIZE(config.mem_regions),
		.num_irqchips = ARRAY_SIZE(config.irqchips),
		/* INTx of the virtual PCI host: SPI 112..115 (INTID 144..147). */
		.vpci_irq_base = 112,
		.cpu_reset_address = 0x40200000,
		.console = {
			.address = 0x09000000,
			.type = JAILHOUSE_CON_TYPE_PL011,
			.flags = JAILHOUSE_CON_ACCESS_MMIO | JAILHOUSE_CON_REGDIST_4,
			/* divider 0: the root cell set the UART up; never reprogram it. */
		},
	},

	.cpus = {
		0x2,
	},

	.mem_regions = {
		/* The PL011, shared with the root cell and the hypervisor. */
		{
			.phys_start = 0x09000000,
			.virt_start = 0x09000000,
			.size = 0x1000,
			.flags = JAILHOUSE_MEM_READ | JAILHOUSE_MEM_WRITE | JAILHOUSE_MEM_IO | JAILHOUSE_MEM_ROOTSHARED,
		},
		/* The cell's RAM; `jailhouse cell load` writes the image into it. */
		{
			.phys_start = 0x70000000,
			.virt_start = 0x40000000,
			.size = 0x04000000,
			.flags = JAILHOUSE_MEM_READ | JAILHOUSE_MEM_WRITE | JAILHOUSE_MEM_EXECUTE | JAILHOUSE_MEM_LOADABLE,
		},
		/* The communication region. */
		{
			.virt_start = 0x80000000,
			.size = 0x1000,
			.flags = JAILHOUSE_MEM_READ | JAILHOUSE_MEM_WRITE | JAILHOUSE_MEM_COMM_REGION,
		},
	},

	.irqchips = {
		/* GICv3 distributor; the cell owns no SPI (the timer is a PPI). */
		{
			.address = 0x08000000,
			.pin_base = 32,
			.pin_bitmap = { 0, 0, 0, 0 },
		},
	},
};
