// Simulation models of the iCE40 cells of nextpnr's placed and routed netlist that Yosys'
// library (share/ice40/cells_sim.v, which has ICESTORM_LC and ICESTORM_RAM) does not define.
// Used with that library by gatework.boards.routed, which reads nextpnr's routed netlist.

// The logic cell and the block RAM as placed (ICESTORM_LC, ICESTORM_RAM), renamed so by
// gatework.boards.routed: Yosys' models of them test their inputs for z, which Verilator, a
// two-state simulator, does not model (the routed netlist ties every unconnected input to the
// level the chip gives it instead). Otherwise they are Yosys' models.
module GATEWORK_ICESTORM_LC (
    input I0, I1, I2, I3, CIN, CLK, CEN, SR,
    output LO, O, COUT
);
    parameter [15:0] LUT_INIT = 0;
    parameter [0:0] NEG_CLK = 0;
    parameter [0:0] CARRY_ENABLE = 0;
    parameter [0:0] DFF_ENABLE = 0;
    parameter [0:0] SET_NORESET = 0;
    parameter [0:0] ASYNC_SR = 0;
    parameter [0:0] CIN_CONST = 0;
    parameter [0:0] CIN_SET = 0;

    wire carry_in = CIN_CONST ? CIN_SET : CIN;
    assign COUT = CARRY_ENABLE ? (I1 & I2) | ((I1 | I2) & carry_in) : 1'b0;
    wire lut = LUT_INIT[{I3, I2, I1, I0}];
    assign LO = lut;
    wire clock = CLK ^ NEG_CLK;
    reg q = 1'b0;
    generate
        if (ASYNC_SR) begin
            always @(posedge clock, posedge SR)
                if (SR)
                    q <= SET_NORESET;
                else if (CEN)
                    q <= lut;
        end else begin
            always @(posedge clock)
                if (CEN)
                    q <= SR ? SET_NORESET : lut;
        end
    endgenerate
    assign O = DFF_ENABLE ? q : lut;
endmodule

module GATEWORK_ICESTORM_RAM (
    output RDATA_15, RDATA_14, RDATA_13, RDATA_12, RDATA_11, RDATA_10, RDATA_9, RDATA_8, RDATA_7, RDATA_6, RDATA_5, RDATA_4, RDATA_3, RDATA_2, RDATA_1, RDATA_0,
    input RCLK, RCLKE, RE,
    input RADDR_10, RADDR_9, RADDR_8, RADDR_7, RADDR_6, RADDR_5, RADDR_4, RADDR_3, RADDR_2, RADDR_1, RADDR_0,
    input WCLK, WCLKE, WE,
    input WADDR_10, WADDR_9, WADDR_8, WADDR_7, WADDR_6, WADDR_5, WADDR_4, WADDR_3, WADDR_2, WADDR_1, WADDR_0,
    input MASK_15, MASK_14, MASK_13, MASK_12, MASK_11, MASK_10, MASK_9, MASK_8, MASK_7, MASK_6, MASK_5, MASK_4, MASK_3, MASK_2, MASK_1, MASK_0,
    input WDATA_15, WDATA_14, WDATA_13, WDATA_12, WDATA_11, WDATA_10, WDATA_9, WDATA_8, WDATA_7, WDATA_6, WDATA_5, WDATA_4, WDATA_3, WDATA_2, WDATA_1, WDATA_0
);
    parameter [1:0] WRITE_MODE = 0;
    parameter [1:0] READ_MODE = 0;
    parameter [0:0] NEG_CLK_R = 1'b0;
    parameter [0:0] NEG_CLK_W = 1'b0;
    parameter [255:0] INIT_0 = 256'h0;
    parameter [255:0] INIT_1 = 256'h0;
    parameter [255:0] INIT_2 = 256'h0;
    parameter [255:0] INIT_3 = 256'h0;
    parameter [255:0] INIT_4 = 256'h0;
    parameter [255:0] INIT_5 = 256'h0;
    parameter [255:0] INIT_6 = 256'h0;
    parameter [255:0] INIT_7 = 256'h0;
    parameter [255:0] INIT_8 = 256'h0;
    parameter [255:0] INIT_9 = 256'h0;
    parameter [255:0] INIT_A = 256'h0;
    parameter [255:0] INIT_B = 256'h0;
    parameter [255:0] INIT_C = 256'h0;
    parameter [255:0] INIT_D = 256'h0;
    parameter [255:0] INIT_E = 256'h0;
    parameter [255:0] INIT_F = 256'h0;

    SB_RAM40_4K #(
        .WRITE_MODE(WRITE_MODE), .READ_MODE(READ_MODE),
        .INIT_0(INIT_0),
        .INIT_1(INIT_1),
        .INIT_2(INIT_2),
        .INIT_3(INIT_3),
        .INIT_4(INIT_4),
        .INIT_5(INIT_5),
        .INIT_6(INIT_6),
        .INIT_7(INIT_7),
        .INIT_8(INIT_8),
        .INIT_9(INIT_9),
        .INIT_A(INIT_A),
        .INIT_B(INIT_B),
        .INIT_C(INIT_C),
        .INIT_D(INIT_D),
        .INIT_E(INIT_E),
        .INIT_F(INIT_F)
    ) ram (
        .RDATA({RDATA_15, RDATA_14, RDATA_13, RDATA_12, RDATA_11, RDATA_10, RDATA_9, RDATA_8, RDATA_7, RDATA_6, RDATA_5, RDATA_4, RDATA_3, RDATA_2, RDATA_1, RDATA_0}),
        .RCLK(RCLK ^ NEG_CLK_R), .RCLKE(RCLKE), .RE(RE),
        .RADDR({RADDR_10, RADDR_9, RADDR_8, RADDR_7, RADDR_6, RADDR_5, RADDR_4, RADDR_3, RADDR_2, RADDR_1, RADDR_0}),
        .WCLK(WCLK ^ NEG_CLK_W), .WCLKE(WCLKE), .WE(WE),
        .WADDR({WADDR_10, WADDR_9, WADDR_8, WADDR_7, WADDR_6, WADDR_5, WADDR_4, WADDR_3, WADDR_2, WADDR_1, WADDR_0}),
        .MASK({MASK_15, MASK_14, MASK_13, MASK_12, MASK_11, MASK_10, MASK_9, MASK_8, MASK_7, MASK_6, MASK_5, MASK_4, MASK_3, MASK_2, MASK_1, MASK_0}),
        .WDATA({WDATA_15, WDATA_14, WDATA_13, WDATA_12, WDATA_11, WDATA_10, WDATA_9, WDATA_8, WDATA_7, WDATA_6, WDATA_5, WDATA_4, WDATA_3, WDATA_2, WDATA_1, WDATA_0})
    );
endmodule

// ICESTORM_DSP: nextpnr's SB_MAC16 once placed, its buses split into single bits. It is the
// SB_MAC16 of Yosys' library, with the same parameters.
module ICESTORM_DSP (
    input CLK, CE, AHOLD, BHOLD, CHOLD, DHOLD, IRSTTOP, IRSTBOT, ORSTTOP, ORSTBOT, OLOADTOP, OLOADBOT, ADDSUBTOP, ADDSUBBOT, OHOLDTOP, OHOLDBOT, CI, ACCUMCI, SIGNEXTIN,
    input C_15, C_14, C_13, C_12, C_11, C_10, C_9, C_8, C_7, C_6, C_5, C_4, C_3, C_2, C_1, C_0,
    input A_15, A_14, A_13, A_12, A_11, A_10, A_9, A_8, A_7, A_6, A_5, A_4, A_3, A_2, A_1, A_0,
    input B_15, B_14, B_13, B_12, B_11, B_10, B_9, B_8, B_7, B_6, B_5, B_4, B_3, B_2, B_1, B_0,
    input D_15, D_14, D_13, D_12, D_11, D_10, D_9, D_8, D_7, D_6, D_5, D_4, D_3, D_2, D_1, D_0,
    output O_31, O_30, O_29, O_28, O_27, O_26, O_25, O_24, O_23, O_22, O_21, O_20, O_19, O_18, O_17, O_16, O_15, O_14, O_13, O_12, O_11, O_10, O_9, O_8, O_7, O_6, O_5, O_4, O_3, O_2, O_1, O_0,
    output CO, ACCUMCO, SIGNEXTOUT
);
    parameter [0:0] NEG_TRIGGER = 0;
    parameter [0:0] C_REG = 0;
    parameter [0:0] A_REG = 0;
    parameter [0:0] B_REG = 0;
    parameter [0:0] D_REG = 0;
    parameter [0:0] TOP_8x8_MULT_REG = 0;
    parameter [0:0] BOT_8x8_MULT_REG = 0;
    parameter [0:0] PIPELINE_16x16_MULT_REG1 = 0;
    parameter [0:0] PIPELINE_16x16_MULT_REG2 = 0;
    parameter [1:0] TOPOUTPUT_SELECT = 0;
    parameter [1:0] TOPADDSUB_LOWERINPUT = 0;
    parameter [0:0] TOPADDSUB_UPPERINPUT = 0;
    parameter [1:0] TOPADDSUB_CARRYSELECT = 0;
    parameter [1:0] BOTOUTPUT_SELECT = 0;
    parameter [1:0] BOTADDSUB_LOWERINPUT = 0;
    parameter [0:0] BOTADDSUB_UPPERINPUT = 0;
    parameter [1:0] BOTADDSUB_CARRYSELECT = 0;
    parameter [0:0] MODE_8x8 = 0;
    parameter [0:0] A_SIGNED = 0;
    parameter [0:0] B_SIGNED = 0;

    SB_MAC16 #(
        .NEG_TRIGGER(NEG_TRIGGER),
        .C_REG(C_REG),
        .A_REG(A_REG),
        .B_REG(B_REG),
        .D_REG(D_REG),
        .TOP_8x8_MULT_REG(TOP_8x8_MULT_REG),
        .BOT_8x8_MULT_REG(BOT_8x8_MULT_REG),
        .PIPELINE_16x16_MULT_REG1(PIPELINE_16x16_MULT_REG1),
        .PIPELINE_16x16_MULT_REG2(PIPELINE_16x16_MULT_REG2),
        .TOPOUTPUT_SELECT(TOPOUTPUT_SELECT),
        .TOPADDSUB_LOWERINPUT(TOPADDSUB_LOWERINPUT),
        .TOPADDSUB_UPPERINPUT(TOPADDSUB_UPPERINPUT),
        .TOPADDSUB_CARRYSELECT(TOPADDSUB_CARRYSELECT),
        .BOTOUTPUT_SELECT(BOTOUTPUT_SELECT),
        .BOTADDSUB_LOWERINPUT(BOTADDSUB_LOWERINPUT),
        .BOTADDSUB_UPPERINPUT(BOTADDSUB_UPPERINPUT),
        .BOTADDSUB_CARRYSELECT(BOTADDSUB_CARRYSELECT),
        .MODE_8x8(MODE_8x8),
        .A_SIGNED(A_SIGNED),
        .B_SIGNED(B_SIGNED)
    ) mac (
        .CLK(CLK),
        .CE(CE),
        .AHOLD(AHOLD),
        .BHOLD(BHOLD),
        .CHOLD(CHOLD),
        .DHOLD(DHOLD),
        .IRSTTOP(IRSTTOP),
        .IRSTBOT(IRSTBOT),
        .ORSTTOP(ORSTTOP),
        .ORSTBOT(ORSTBOT),
        .OLOADTOP(OLOADTOP),
        .OLOADBOT(OLOADBOT),
        .ADDSUBTOP(ADDSUBTOP),
        .ADDSUBBOT(ADDSUBBOT),
        .OHOLDTOP(OHOLDTOP),
        .OHOLDBOT(OHOLDBOT),
        .CI(CI),
        .ACCUMCI(ACCUMCI),
        .SIGNEXTIN(SIGNEXTIN),
        .C({C_15, C_14, C_13, C_12, C_11, C_10, C_9, C_8, C_7, C_6, C_5, C_4, C_3, C_2, C_1, C_0}),
        .A({A_15, A_14, A_13, A_12, A_11, A_10, A_9, A_8, A_7, A_6, A_5, A_4, A_3, A_2, A_1, A_0}),
        .B({B_15, B_14, B_13, B_12, B_11, B_10, B_9, B_8, B_7, B_6, B_5, B_4, B_3, B_2, B_1, B_0}),
        .D({D_15, D_14, D_13, D_12, D_11, D_10, D_9, D_8, D_7, D_6, D_5, D_4, D_3, D_2, D_1, D_0}),
        .O({O_31, O_30, O_29, O_28, O_27, O_26, O_25, O_24, O_23, O_22, O_21, O_20, O_19, O_18, O_17, O_16, O_15, O_14, O_13, O_12, O_11, O_10, O_9, O_8, O_7, O_6, O_5, O_4, O_3, O_2, O_1, O_0}),
        .CO(CO), .ACCUMCO(ACCUMCO), .SIGNEXTOUT(SIGNEXTOUT)
    );
endmodule

// ICESTORM_PLL: the PLL, simulated as a wire. Its reference clock (the clock pin) comes out
// unchanged on both outputs and LOCK is high, so the design runs at the clock the simulation
// gives the pin: the PLL's frequency synthesis is the one part of the chip left out (the
// design's logic is synchronous to the PLL's output only).
module ICESTORM_PLL (
    input REFERENCECLK, EXTFEEDBACK, BYPASS, RESETB, LATCHINPUTVALUE, SCLK, SDI,
    input DYNAMICDELAY_7, DYNAMICDELAY_6, DYNAMICDELAY_5, DYNAMICDELAY_4, DYNAMICDELAY_3, DYNAMICDELAY_2, DYNAMICDELAY_1, DYNAMICDELAY_0,
    output PLLOUT_A, PLLOUT_A_GLOBAL, LOCK, SDO
);
    parameter [31:0] PLLTYPE = 0;
    parameter [0:0] DELAY_ADJMODE_FB = 0;
    parameter [0:0] DELAY_ADJMODE_REL = 0;
    parameter [31:0] DIVF = 0;
    parameter [31:0] DIVQ = 0;
    parameter [31:0] DIVR = 0;
    parameter [0:0] ENABLE_ICEGATE_PORTA = 0;
    parameter [0:0] ENABLE_ICEGATE_PORTB = 0;
    parameter [3:0] FDA_FEEDBACK = 0;
    parameter [3:0] FDA_RELATIVE = 0;
    parameter [2:0] FEEDBACK_PATH = 0;
    parameter [31:0] FILTER_RANGE = 0;
    parameter [1:0] PLLOUT_SELECT_A = 0;
    parameter [1:0] PLLOUT_SELECT_B = 0;
    parameter [0:0] SHIFTREG_DIVMODE = 0;
    parameter [0:0] TEST_MODE = 0;

    assign PLLOUT_A = REFERENCECLK;
    assign PLLOUT_A_GLOBAL = REFERENCECLK;
    assign LOCK = 1'b1;
    assign SDO = 1'b0;
endmodule
